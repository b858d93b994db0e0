#ifndef WARREN_CBUILDINFO_H
#define WARREN_CBUILDINFO_H

/// The short commit this binary was built from, or "unknown" (Package.swift defines it).
const char *warren_build_commit(void);

#endif
