#ifndef LOCKSMITH_CLINUX_H
#define LOCKSMITH_CLINUX_H
/* The C side of the system layer: its functions are called only from Sources/ImageLock/System
 * and, before main, from the executable's start (Sources/LocksmithStart) (its constants are
 * also used by RangeLock.swift and SharedFilesystem.swift, and no module above ImageLock
 * depends on CLinux). Glibc hides the open-file-description lock commands (F_OFD_GETLK 36,
 * F_OFD_SETLK 37, F_OFD_SETLKW 38) unless _GNU_SOURCE is defined before
 * <fcntl.h>; Swift's Glibc module does not define it. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

static const int clinux_F_OFD_GETLK = F_OFD_GETLK;
static const int clinux_F_OFD_SETLK = F_OFD_SETLK;
static const int clinux_F_OFD_SETLKW = F_OFD_SETLKW;

/* A task asleep in a blocking lock call, as /proc/PID/task/TID/syscall shows it (the call's
 * number, then its arguments): fcntl with F_SETLKW or F_OFD_SETLKW, or flock without LOCK_NB.
 * The numbers are this architecture's (x86_64: 72 and 73; aarch64: 25 and 32). */
static const long clinux_SYS_fcntl = SYS_fcntl;
static const long clinux_SYS_flock = SYS_flock;

/* fcntl is variadic in C; give Swift a typed entry for the lock commands. */
static inline int clinux_fcntl_lock(int fd, int cmd, struct flock *lk) {
    return fcntl(fd, cmd, lk);
}

/* Makes a thread created with *attr start on another CPU than the calling thread's (of those
 * it may run on, saved in *allowed; nothing when there is no other): a new thread is otherwise
 * often queued on its creator's CPU and runs only when the creator next sleeps. The thread
 * then takes back *allowed (clinux_set_affinity). 1 when set. The early read (shim.c) and
 * Sys.startThread(elsewhere:) start their threads so. */
static inline int clinux_attr_start_off_current_cpu(pthread_attr_t *attr, cpu_set_t *allowed) {
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof *allowed, allowed) != 0 ||
        !CPU_ISSET(cpu, allowed) || CPU_COUNT(allowed) < 2) return 0;
    cpu_set_t set = *allowed;
    CPU_CLR(cpu, &set);
    return pthread_attr_setaffinity_np(attr, sizeof set, &set) == 0;
}

/* The calling thread's affinity set to *set; 0 on success. */
static inline int clinux_set_affinity(const cpu_set_t *set) {
    return sched_setaffinity(0, sizeof *set, set);
}

/* Pins the calling thread to one CPU, saving its affinity in *saved first; 0 on success.
 * The scheduler's per-CPU task clocks drift apart (IRQ and steal time are left out per CPU):
 * times from two CPUs' /proc/.../sched compare only when read on the same CPU. */
static inline int clinux_pin_to_cpu(int cpu, cpu_set_t *saved) {
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof *saved, saved) != 0) return -1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one);
}

static inline void clinux_restore_affinity(const cpu_set_t *saved) {
    (void)sched_setaffinity(0, sizeof *saved, saved);
}

/* The CPU the calling thread runs on (sched_getcpu), or -1. */
static inline int clinux_current_cpu(void) { return sched_getcpu(); }

/* Keeps the calling thread off `cpu` (-1: off none) from now on, within the CPUs it is
 * allowed (an affinity set on it by anyone else since the last call is respected); a thread
 * that would have no CPU left is allowed them all. Thread-local state: nothing is asked of
 * the kernel while `cpu` stays the same. 0 when set. */
int clinux_keep_off_cpu(int cpu);

/* Hands the free pages of every malloc arena back to the system (glibc's malloc_trim;
 * Swift's Glibc module leaves <malloc.h> out). */
static inline void clinux_trim_heap(void) { (void)malloc_trim(0); }

/* The C locale as a locale_t, for formatting numbers whatever setlocale(3) chose (LC_ALL_MASK
 * is an expression macro Swift does not import). */
static inline locale_t clinux_c_locale(void) { return newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* Names the calling thread (at most 15 bytes; pthread_setname_np is a _GNU_SOURCE function). */
static inline void clinux_name_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }

/* At most `n` malloc arenas (glibc's mallopt M_ARENA_MAX); effective for threads that have
 * not allocated yet. */
static inline void clinux_limit_heap_arenas(int n) { (void)mallopt(M_ARENA_MAX, n); }

/* Blocks of at least `bytes` are mapped on their own and unmapped when freed; a fixed
 * threshold (glibc otherwise raises it to the biggest block freed so far). */
static inline void clinux_map_big_heap_blocks(int bytes) { (void)mallopt(M_MMAP_THRESHOLD, bytes); }

/* The file an fd of some process refers to, by statx(2) of /proc/PID/fd/N relative to the
 * fd dir: one syscall, no readlink, no fdinfo. AT_STATX_DONT_SYNC: take what the kernel has
 * cached, so that a hung NFS or FUSE server cannot make the scan wait. */
struct clinux_fd_target {
    unsigned long long inode;
    unsigned int dev_major;
    unsigned int dev_minor;
    unsigned int mode;
};

static inline int clinux_fd_target(int dirfd, const char *name, struct clinux_fd_target *out) {
    struct statx sx;
    int r = statx(dirfd, name, AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &sx);
    if (r != 0) return r;
    out->inode = sx.stx_ino;
    out->dev_major = sx.stx_dev_major;
    out->dev_minor = sx.stx_dev_minor;
    out->mode = sx.stx_mode;
    return 0;
}

/* stat(2) of a path (links followed, attributes as stat syncs them) by statx(2), with the
 * mount the path ends on: statfs answers per filesystem, so one statfs per mount id answers
 * for every file on it. has_mount is 0 when the kernel does not say (before Linux 5.8). */
struct clinux_path_status {
    unsigned long long inode, dev, links, size, mount;
    unsigned int mode, uid, gid;
    int has_mount;
};

static inline int clinux_stat_with_mount(const char *path, struct clinux_path_status *out) {
    struct statx sx;
    int r = statx(AT_FDCWD, path, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_MNT_ID, &sx);
    if (r != 0) return r;
    out->inode = sx.stx_ino;
    unsigned long long major = sx.stx_dev_major, minor = sx.stx_dev_minor;  /* glibc's makedev */
    out->dev = ((major & 0xfffULL) << 8) | ((major & ~0xfffULL) << 32) | (minor & 0xffULL) | ((minor & ~0xffULL) << 12);
    out->links = sx.stx_nlink;
    out->size = sx.stx_size;
    out->mode = sx.stx_mode;
    out->uid = sx.stx_uid;
    out->gid = sx.stx_gid;
    out->has_mount = (sx.stx_mask & STATX_MNT_ID) != 0;
    out->mount = out->has_mount ? sx.stx_mnt_id : 0;
    return 0;
}

/* kcmp(2) KCMP_FILE: 0 when fd1 of pid1 and fd2 of pid2 are the same open file description
 * (shared by dup or fork), 1 or 2 when not, -1 on error (no ptrace access, gone). */
static inline long clinux_kcmp_file(int pid1, int pid2, int fd1, int fd2) {
#ifdef SYS_kcmp
    return syscall(SYS_kcmp, pid1, pid2, 0 /* KCMP_FILE */, fd1, fd2);
#else
    return -1;
#endif
}

/* openat2(2) with RESOLVE_NO_SYMLINKS (no symbolic link, magic link included, is followed
 * anywhere on the path): the fd, or -1 with errno (ENOSYS before Linux 5.6). */
static inline int clinux_open_no_symlinks(const char *path, int flags) {
#ifdef SYS_openat2
    struct { unsigned long long flags, mode, resolve; } how = { (unsigned long long)(unsigned int)flags, 0, 0x04 /* RESOLVE_NO_SYMLINKS */ };
    return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static const int clinux_O_PATH = O_PATH;

/* pidfd_open(2) and pidfd_send_signal(2) (Linux 5.3, 5.1): -1 with errno on failure. */
static inline int clinux_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static inline int clinux_pidfd_send_signal(int pidfd, int sig) {
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, (void *)0, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* statfs f_type magic numbers of shared/network filesystems (linux/magic.h). */
#define CLINUX_NFS_SUPER_MAGIC     0x6969
#define CLINUX_FUSE_SUPER_MAGIC    0x65735546
#define CLINUX_CEPH_SUPER_MAGIC    0x00c36400
#define CLINUX_SMB2_MAGIC_NUMBER   0xfe534d42
#define CLINUX_CIFS_MAGIC_NUMBER   0xff534d42
#define CLINUX_GFS2_MAGIC          0x01161970
#define CLINUX_OCFS2_SUPER_MAGIC   0x7461636f

/* The early read (shim.c). The first read of the kernel's lock table after idle waits for an
 * RCU grace period (file_rwsem taken for writing, fs/locks.c); when it is asked for within
 * about a millisecond of exec it shares the grace period exec's own RCU work starts, later it
 * waits for that one and a whole next one (~5 ms against ~15 ms here, HZ 250). So `locksmith
 * list` and `audit` start it from a constructor, before main (Sources/LocksmithStart/start.c).
 * A process does not end before such a read does (the reading thread waits uninterruptibly).
 * One at a time: clinux_early_read_start returns 0 or an errno (EBUSY: one is under way and
 * not taken); clinux_early_read_running says whether one of `path` is under way and not taken;
 * clinux_early_read_take returns 0 when there is none (or another caller took it), else waits
 * for it and returns 1 with its bytes (malloc'd, the caller frees; NULL with *err set when
 * nothing could be read) and the seconds from its open to its end. Start it before any thread
 * that may take it. */
int clinux_early_read_start(const char *path);
int clinux_early_read_running(const char *path);
int clinux_early_read_take(const char *path, unsigned char **bytes, size_t *count, int *err, double *seconds);
/* Of the last early read taken: the CPU its creator was on, the one the reader started on
 * (another, when the creator may run on two or more: a new thread is otherwise often queued
 * behind its creator), and how many CPUs the reader was allowed once started (all its
 * creator's). */
void clinux_early_read_cpus(int *creator, int *reader, int *reader_cpus);

#endif
