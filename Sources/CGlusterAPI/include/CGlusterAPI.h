#ifndef LOCKSMITH_CGLUSTERAPI_H
#define LOCKSMITH_CGLUSTERAPI_H
/* libgfapi (glusterfs-api; headers from Debian's libglusterfs-dev), loaded on first use
 * rather than linked: its fifteen libraries (krb5, tirpc, libglusterfs...) cost ~2.5 ms at
 * every start of locksmith, also for the runs that never touch Gluster, and a host without
 * libgfapi can still run everything else. glfs.h gives the types and prototypes; the
 * cgluster_* functions below call the library's own through dlvsym, each at the symbol
 * version glfs.h names (what the linker would have bound). Not pkgConfig: SwiftPM cannot
 * parse glusterfs-api.pc (SwiftPM cannot read glusterfs-api.pc).
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

/* NULL once libgfapi is loaded (loaded by the first call of any function here); else why it
 * cannot be (dlerror's text). Every other function fails with errno ELIBACC then. */
const char *cgluster_unavailable(void);

glfs_t *cgluster_new(const char *volname);
int cgluster_set_volfile_server(glfs_t *fs, const char *transport, const char *host, int port);
int cgluster_set_logging(glfs_t *fs, const char *logfile, int loglevel);
int cgluster_init(glfs_t *fs);
int cgluster_fini(glfs_t *fs);
glfs_fd_t *cgluster_open(glfs_t *fs, const char *path, int flags);
int cgluster_close(glfs_fd_t *fd);
int cgluster_fstat(glfs_fd_t *fd, struct stat *buf);
int cgluster_posix_lock(glfs_fd_t *fd, int cmd, struct flock *flock);
int cgluster_fd_set_lkowner(glfs_fd_t *fd, void *data, int len);
glfs_fd_t *cgluster_opendir(glfs_t *fs, const char *path);
int cgluster_readdirplus_r(glfs_fd_t *fd, struct stat *stat, struct dirent *dirent, struct dirent **result);
int cgluster_closedir(glfs_fd_t *fd);
#endif
