#pragma once
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro over a cast Swift cannot import: sqlite must copy bound text/blobs.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

// Memory statistics cost a global mutex and two counters on every allocation SQLite makes (and
// this build of SQLite has no lookaside allocator, so it makes many). Switchyard never reads
// them. Must run before SQLite initializes (https://www.sqlite.org/c3ref/c_config_covering_index_scan.html#sqliteconfigmemstatus);
// sqlite3_config is variadic, which Swift cannot call.
static inline int csqlite_disable_memory_statistics(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
