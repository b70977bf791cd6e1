// libgfapi, loaded on first use (see CGlusterAPI.h).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "CGlusterAPI.h"

static struct {
    __typeof__(&glfs_new) new_;
    __typeof__(&glfs_set_volfile_server) set_volfile_server;
    __typeof__(&glfs_set_logging) set_logging;
    __typeof__(&glfs_init) init;
    __typeof__(&glfs_fini) fini;
    __typeof__(&glfs_open) open;
    __typeof__(&glfs_close) close;
    __typeof__(&glfs_fstat) fstat;
    __typeof__(&glfs_posix_lock) posix_lock;
    __typeof__(&glfs_fd_set_lkowner) fd_set_lkowner;
    __typeof__(&glfs_opendir) opendir;
    __typeof__(&glfs_readdirplus_r) readdirplus_r;
    __typeof__(&glfs_closedir) closedir;
} api;

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
#define BIND(field, name, version)                                                         \
    if (!(api.field = (__typeof__(api.field))dlvsym(lib, #name, version))) {               \
        snprintf(failure, sizeof failure, "libgfapi.so.0 has no %s@%s", #name, version);   \
        unavailable = failure;                                                             \
        return;                                                                            \
    }
    BIND(new_, glfs_new, "GFAPI_3.4.0")
    BIND(set_volfile_server, glfs_set_volfile_server, "GFAPI_3.4.0")
    BIND(set_logging, glfs_set_logging, "GFAPI_3.4.0")
    BIND(init, glfs_init, "GFAPI_3.4.0")
    BIND(fini, glfs_fini, "GFAPI_3.4.0")
    BIND(open, glfs_open, "GFAPI_3.4.0")
    BIND(close, glfs_close, "GFAPI_3.4.0")
    BIND(fstat, glfs_fstat, "GFAPI_3.4.0")
    BIND(posix_lock, glfs_posix_lock, "GFAPI_3.4.0")
    BIND(fd_set_lkowner, glfs_fd_set_lkowner, "GFAPI_3.10.7")
    BIND(opendir, glfs_opendir, "GFAPI_3.4.0")
    BIND(readdirplus_r, glfs_readdirplus_r, "GFAPI_3.4.0")
    BIND(closedir, glfs_closedir, "GFAPI_3.4.0")
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

glfs_t *cgluster_new(const char *volname) { CALL(NULL, api.new_(volname)) }
int cgluster_set_volfile_server(glfs_t *fs, const char *transport, const char *host, int port) {
    CALL(-1, api.set_volfile_server(fs, transport, host, port))
}
int cgluster_set_logging(glfs_t *fs, const char *logfile, int loglevel) { CALL(-1, api.set_logging(fs, logfile, loglevel)) }
int cgluster_init(glfs_t *fs) { CALL(-1, api.init(fs)) }
int cgluster_fini(glfs_t *fs) { CALL(-1, api.fini(fs)) }
glfs_fd_t *cgluster_open(glfs_t *fs, const char *path, int flags) { CALL(NULL, api.open(fs, path, flags)) }
int cgluster_close(glfs_fd_t *fd) { CALL(-1, api.close(fd)) }
int cgluster_fstat(glfs_fd_t *fd, struct stat *buf) { CALL(-1, api.fstat(fd, buf)) }
int cgluster_posix_lock(glfs_fd_t *fd, int cmd, struct flock *flock) { CALL(-1, api.posix_lock(fd, cmd, flock)) }
int cgluster_fd_set_lkowner(glfs_fd_t *fd, void *data, int len) { CALL(-1, api.fd_set_lkowner(fd, data, len)) }
glfs_fd_t *cgluster_opendir(glfs_t *fs, const char *path) { CALL(NULL, api.opendir(fs, path)) }
int cgluster_readdirplus_r(glfs_fd_t *fd, struct stat *stat, struct dirent *dirent, struct dirent **result) {
    CALL(-1, api.readdirplus_r(fd, stat, dirent, result))
}
int cgluster_closedir(glfs_fd_t *fd) { CALL(-1, api.closedir(fd)) }
