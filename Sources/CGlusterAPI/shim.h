#ifndef LOCKSMITH_CGLUSTERAPI_H
#define LOCKSMITH_CGLUSTERAPI_H
/* libgfapi (glusterfs-api, Debian package libglusterfs-dev). Linked as "gfapi" through this
 * module map: SwiftPM cannot parse glusterfs-api.pc (FACTS.md §6).
 *
 * glfs.h defines _FILE_OFFSET_BITS 64 before including the libc headers, which gives
 * struct flock, struct dirent, ... definitions that clang's modules see as different from
 * those of Swift's Glibc module (same layout on 64-bit, other field type names). Include
 * the libc headers first, with no feature macros (not even _GNU_SOURCE: it renames fd_set's
 * field, which Dispatch's module would then see twice), so that glfs.h's own includes are
 * no-ops and every module shares one definition. glfs.h then typedefs off64_t itself.
 * 64-bit only: there off_t is already 64 bits. */
#include <sys/types.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <sys/cdefs.h>
#include <dirent.h>
#include <sys/statvfs.h>
#include <stdint.h>
#include <sys/time.h>
_Static_assert(sizeof(off_t) == 8, "locksmith's Gluster support needs a 64-bit off_t");
#include <glusterfs/api/glfs.h>
#endif
