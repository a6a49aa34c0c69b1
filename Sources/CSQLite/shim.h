#pragma once
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro over a cast Swift cannot import: sqlite must copy bound text/blobs.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
