#pragma once
// Header-only fence for Linux calls that `import Glibc` does not expose to Swift, and static inline
// wrappers for variadic C functions (Swift cannot call variadic C: prctl, syscall, fcntl, open).
// No _GNU_SOURCE here: defining it changes struct layouts (fd_set, rusage) against the Glibc module
// and clang refuses the mix. The few GNU-only items are declared explicitly below instead.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>

// GNU extensions (glibc >= 2.34 provides them; Debian 12 has 2.36).
extern int pipe2(int pipefd[2], int flags);
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
#define CLINUX_POSIX_SPAWN_SETSID 0x80
#define CLINUX_SCM_CREDENTIALS 0x02
#define CLINUX_MSG_CMSG_CLOEXEC 0x40000000
struct clinux_ucred { pid_t pid; uid_t uid; gid_t gid; };

static inline int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
static inline int clinux_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

static inline int clinux_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}
static inline int clinux_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
static inline int clinux_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}
static inline int clinux_set_pdeathsig(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
}
static inline int clinux_fcntl_getfl(int fd) { return fcntl(fd, F_GETFL); }
static inline int clinux_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags); }
static inline int clinux_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}
static inline int clinux_set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}
static inline int clinux_open(const char *path, int flags, mode_t mode) {
    return open(path, flags | O_CLOEXEC, mode);
}
static inline int clinux_errno(void) { return errno; }
static inline void clinux_set_errno(int value) { errno = value; }

// POSIX_SPAWN_SETSID is a glibc extension (2.26+) and hidden without _GNU_SOURCE.
static inline short clinux_spawn_setsid_flag(void) { return CLINUX_POSIX_SPAWN_SETSID; }
static inline int clinux_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
static inline int clinux_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

// WIFEXITED and friends are macros.
static inline int clinux_wifexited(int status) { return WIFEXITED(status); }
static inline int clinux_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int clinux_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int clinux_wtermsig(int status) { return WTERMSIG(status); }

// siginfo_t's si_pid/si_status/si_code live in a union Swift imports awkwardly.
static inline pid_t clinux_siginfo_pid(const siginfo_t *info) { return info->si_pid; }
static inline int clinux_siginfo_status(const siginfo_t *info) { return info->si_status; }
static inline int clinux_siginfo_code(const siginfo_t *info) { return info->si_code; }

// SCM_CREDENTIALS helpers for sd_notify receivers (cmsg macros are not importable).
static inline int clinux_recv_with_credentials(int fd, void *buf, size_t len, pid_t *pid, uid_t *uid) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union { struct cmsghdr align; char space[CMSG_SPACE(sizeof(struct clinux_ucred)) + CMSG_SPACE(sizeof(int) * 8)]; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | CLINUX_MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == CLINUX_SCM_CREDENTIALS) {
            struct clinux_ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof(cred));
            *pid = cred.pid;
            if (uid) *uid = cred.uid;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            // Never keep file descriptors a sender pushed at us (sd_notify FDSTORE=1 is not supported).
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int fds[8];
            if (count > 8) count = 8;
            memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)count);
            for (int i = 0; i < count; i++) close(fds[i]);
        }
    }
    if (msg.msg_flags & MSG_TRUNC) { errno = EMSGSIZE; return -2; }
    return (int)n;
}

static inline int clinux_enable_passcred(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, 16 /* SO_PASSCRED */, &one, sizeof(one));
}
static inline int clinux_set_reuseaddr(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
}
static inline int clinux_set_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
static inline int clinux_set_v6only(int fd, int on) {
    return setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
}

// Bind or connect a unix socket by path without fighting sockaddr_un from Swift.
static inline int clinux_unix_bind(int fd, const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    return bind(fd, (struct sockaddr *)&addr, sizeof(addr));
}
static inline ssize_t clinux_unix_sendto(int fd, const char *path, const void *buf, size_t len, int flags) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    return sendto(fd, buf, len, flags, (struct sockaddr *)&addr, sizeof(addr));
}
