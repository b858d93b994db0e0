#include "CBuildInfo.h"

// A C define is the one way SwiftPM passes a value (not only a flag) into a build without a plugin.
#ifndef WARREN_COMMIT
#define WARREN_COMMIT "unknown"
#endif

const char *warren_build_commit(void) {
    return WARREN_COMMIT;
}
