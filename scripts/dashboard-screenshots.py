#!/usr/bin/env python3
"""Screenshots of every dashboard tab, on an empty and on a busy database.

Starts the whole stack (switchyard-supervisor, embedded default) in a temporary state folder on
127.0.0.1, signs in through the real login form in headless Chromium (DevTools protocol), and
writes PNGs to the output folder. Needs: chromium (Debian package), websocket-client (PyPI).

    scripts/dashboard-screenshots.py [--out docs/screenshots] [--bin .build/debug]
"""
import argparse, base64, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

try:
    import websocket  # websocket-client
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "websocket-client"])
    import websocket

TABS = ["active", "queued", "attention", "done", "failed", "agents", "components", "events"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


class Chromium:
    def __init__(self, profile_dir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={self.port}",
             f"--user-data-dir={profile_dir}", "--window-size=1400,1000", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=1), what="chromium")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=2))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0
        self.call("Page.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url):
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.call("Runtime.evaluate", expression="document.readyState")["result"]["value"] == "complete",
                 what=f"load of {url}")
        time.sleep(0.3)

    def screenshot(self, path):
        height = self.call("Runtime.evaluate", expression="document.documentElement.scrollHeight")["result"]["value"]
        self.call("Emulation.setDeviceMetricsOverride", width=1400, height=max(600, min(int(height), 3000)), deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


def api(base, token, method, path, body=None):
    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--bin", default=".build/debug")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    state = tempfile.mkdtemp(prefix="sy-shots-")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SWITCHYARD_STATE_DIR": state,
           "SWITCHYARD_GATE_LISTEN": f"127.0.0.1:{port}", "SWITCHYARD_LOG": "stderr", "SWITCHYARD_LANE_LIMIT": "2",
           "SWITCHYARD_RETRY_BASE_MS": "200"}
    stack = subprocess.Popen([os.path.join(args.bin, "switchyard-supervisor")], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(state, "stack.log"), "w"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    browser = None
    try:
        wait_for(lambda: urllib.request.urlopen(base + "/healthz", timeout=1).status == 200, what="the gate")
        token = open(os.path.join(state, "control-token")).read().strip()
        browser = Chromium(os.path.join(state, "chromium"))
        browser.navigate(base + "/dashboard/login")
        browser.screenshot(os.path.join(args.out, "login.png"))
        browser.call("Runtime.evaluate", expression=f"document.getElementById('token').value={json.dumps(token)};document.querySelector('form').submit()")
        wait_for(lambda: browser.call("Runtime.evaluate", expression="location.pathname")["result"]["value"] == "/dashboard", what="sign-in")
        for tab in TABS:
            browser.navigate(f"{base}/dashboard?tab={tab}")
            browser.screenshot(os.path.join(args.out, f"empty-{tab}.png"))
        # A busy database: successes, retries, a question for the operator, a dead task, long runners, a parked task.
        prompts = [("refactor the parser @work=100", "code"), ("write release notes @cost=0.12", "docs"),
                   ("flaky integration test @fail-until=2", "ci"), ("which database should I migrate? @ask=pick a database", "ops"),
                   ("broken build @fail", "ci"), ("long analysis @work=60000 @progress=60", "research"),
                   ("second long job @work=60000 @progress=60", "research2"), ("train a model", "gpu")]
        for i, (prompt, lane) in enumerate(prompts * 2):
            body = {"prompt": prompt, "lane": lane, "max_attempts": 2}
            if lane == "gpu":
                body["capabilities"] = ["gpu"]
            api(base, token, "POST", "/control/api/tasks", body)
        time.sleep(4)
        api(base, token, "POST", "/control/dispatch-next", {"dry_run": True, "requested_by": "screenshots"})
        for tab in TABS:
            browser.navigate(f"{base}/dashboard?tab={tab}")
            browser.screenshot(os.path.join(args.out, f"busy-{tab}.png"))
        browser.navigate(f"{base}/dashboard/tasks/1")
        browser.screenshot(os.path.join(args.out, "busy-task.png"))
        api(base, token, "POST", "/control/pause", {"reason": "maintenance window", "paused_by": "screenshots", "maintenance_mode": True})
        browser.navigate(f"{base}/dashboard?tab=active")
        browser.screenshot(os.path.join(args.out, "busy-paused.png"))
        print(f"screenshots written to {args.out}")
    finally:
        if browser:
            browser.close()
        os.killpg(stack.pid, signal.SIGTERM)
        stack.wait(timeout=60)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
