// libgfapi, loaded on first use (see CGlusterAPI.h).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "CGlusterAPI.h"

/* Every function used, with the symbol version glfs.h declares it at: one list for the
 * table of pointers and for binding them. */
#define GFAPI_FUNCTIONS(X)                       \
    X(glfs_new, "GFAPI_3.4.0")                   \
    X(glfs_set_volfile_server, "GFAPI_3.4.0")    \
    X(glfs_set_logging, "GFAPI_3.4.0")           \
    X(glfs_init, "GFAPI_3.4.0")                  \
    X(glfs_fini, "GFAPI_3.4.0")                  \
    X(glfs_open, "GFAPI_3.4.0")                  \
    X(glfs_close, "GFAPI_3.4.0")                 \
    X(glfs_fstat, "GFAPI_3.4.0")                 \
    X(glfs_posix_lock, "GFAPI_3.4.0")            \
    X(glfs_fd_set_lkowner, "GFAPI_3.10.7")       \
    X(glfs_opendir, "GFAPI_3.4.0")               \
    X(glfs_readdirplus_r, "GFAPI_3.4.0")         \
    X(glfs_closedir, "GFAPI_3.4.0")

#define FIELD(name, version) __typeof__(&name) name;
static struct {
    GFAPI_FUNCTIONS(FIELD)
} api;
#undef FIELD

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];
static const char *unavailable;

static void load(void) {
    void *lib = dlopen("libgfapi.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(failure, sizeof failure, "%s", dlerror());
        unavailable = failure;
        return;
    }
#define BIND(name, version)                                                                \
    if (!(api.name = (__typeof__(api.name))dlvsym(lib, #name, version))) {                 \
        snprintf(failure, sizeof failure, "libgfapi.so.0 has no %s@%s", #name, version);   \
        unavailable = failure;                                                             \
        return;                                                                            \
    }
    GFAPI_FUNCTIONS(BIND)
#undef BIND
}

const char *cgluster_unavailable(void) {
    pthread_once(&once, load);
    return unavailable;
}

#define CALL(fail, call)                  \
    if (cgluster_unavailable()) {         \
        errno = ELIBACC;                  \
        return fail;                      \
    }                                     \
    return call;

glfs_t *cgluster_new(const char *volname) { CALL(NULL, api.glfs_new(volname)) }
int cgluster_set_volfile_server(glfs_t *fs, const char *transport, const char *host, int port) {
    CALL(-1, api.glfs_set_volfile_server(fs, transport, host, port))
}
int cgluster_set_logging(glfs_t *fs, const char *logfile, int loglevel) { CALL(-1, api.glfs_set_logging(fs, logfile, loglevel)) }
int cgluster_init(glfs_t *fs) { CALL(-1, api.glfs_init(fs)) }
int cgluster_fini(glfs_t *fs) { CALL(-1, api.glfs_fini(fs)) }
glfs_fd_t *cgluster_open(glfs_t *fs, const char *path, int flags) { CALL(NULL, api.glfs_open(fs, path, flags)) }
int cgluster_close(glfs_fd_t *fd) { CALL(-1, api.glfs_close(fd)) }
int cgluster_fstat(glfs_fd_t *fd, struct stat *buf) { CALL(-1, api.glfs_fstat(fd, buf)) }
int cgluster_posix_lock(glfs_fd_t *fd, int cmd, struct flock *flock) { CALL(-1, api.glfs_posix_lock(fd, cmd, flock)) }
int cgluster_fd_set_lkowner(glfs_fd_t *fd, void *data, int len) { CALL(-1, api.glfs_fd_set_lkowner(fd, data, len)) }
glfs_fd_t *cgluster_opendir(glfs_t *fs, const char *path) { CALL(NULL, api.glfs_opendir(fs, path)) }
int cgluster_readdirplus_r(glfs_fd_t *fd, struct stat *stat, struct dirent *dirent, struct dirent **result) {
    CALL(-1, api.glfs_readdirplus_r(fd, stat, dirent, result))
}
int cgluster_closedir(glfs_fd_t *fd) { CALL(-1, api.glfs_closedir(fd)) }
