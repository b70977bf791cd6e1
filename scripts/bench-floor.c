// The kernel's floor for one exact `locksmith list` of a host: only the system calls whose
// answers the listing needs, in C, with the least user-space work that can use them, on
// two threads. scripts/bench compiles and runs it beside `locksmith list --json` in the same
// state, so the table shows how much of locksmith's time is the kernel's.
//
//   bench-floor [--runs N] [--alone] LOCKDIR... -- IMAGEDIR...
//
// --alone: /proc/locks, then the fds' statx, each timed alone (one thread, nothing else
// running), then the fds' statx on two threads: `why`'s two ways to find a lock's holder
// (it reads the holders' fdinfo after a statx of every fd on both cores, and the table
// only where that cannot be the whole answer).
//
// What it does (as locksmith's scan, minus everything but the calls):
//   thread A: reads /proc/locks whole (4 KB a read, as the kernel hands it out) and parses
//             each row's pid, kind, device and inode;
//   thread B: lists every /proc/PID/fd and statx()es each entry (the target's device and
//             inode), then lists the lock dirs and the image dirs (getdents only) and
//             hashes each image's path with SHA-1 (the lockfile scheme's name);
//   then both: for each fd on a locked inode, its fdinfo (an inode with an OFD, flock or
//             lease row) or an lstat of its link (classic POSIX rows only: the open mode).
// Prints one line of medians in ms: total, then each part.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// ---- /proc/locks: the locked inodes, and whether each has a row no pid names exactly
typedef struct { uint64_t dev, ino; int needs_fdinfo; } Locked;
static Locked *locked;
static size_t nlocked, caplocked;
static size_t table_rows;
static double t_table;

static void add_locked(uint64_t dev, uint64_t ino, int needs) {
    if (nlocked == caplocked) {
        caplocked = caplocked ? caplocked * 2 : 4096;
        locked = realloc(locked, caplocked * sizeof *locked);
    }
    locked[nlocked++] = (Locked){dev, ino, needs};
}

static void *read_table(void *arg) {
    (void)arg;
    double t0 = now();
    int fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - len < 4096) buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0) break;
        len += n;
    }
    close(fd);
    // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("-> " rows are waiters)
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', end - p);
        if (!nl) nl = end;
        *nl = 0;
        table_rows++;
        if (!strstr(p, "->")) {
            char kind[16], adv[16], type[16];
            long pid;
            unsigned maj, min;
            unsigned long long ino;
            if (sscanf(p, "%*d: %15s %15s %15s %ld %x:%x:%llu", kind, adv, type, &pid, &maj, &min, &ino) == 7)
                add_locked(((uint64_t)maj << 32) | min, ino, strcmp(kind, "POSIX") != 0);
        }
        p = nl + 1;
    }
    free(buf);
    t_table = now() - t0;
    return NULL;
}

// ---- every fd's target
typedef struct { int pid, fd; uint64_t dev, ino; } FD;
static FD *fds;
static size_t nfds, capfds;
static double t_fds, t_dirs, t_sha;
static char **lockdirs, **imagedirs;
static int nlockdirs, nimagedirs;
static size_t dir_entries;

// Every fd of `pid`, statx()ed relative to its fd dir; `keep` (when given) gets each. Returns
// how many were.
static size_t statx_fds(int pid, void (*keep)(int pid, const char *name, const struct statx *sx)) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;
    DIR *fdd = fdopendir(dfd);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(fdd))) {
        if (e->d_name[0] == '.') continue;
        struct statx sx;
        if (statx(dfd, e->d_name, AT_STATX_DONT_SYNC, STATX_INO | STATX_TYPE, &sx) != 0) continue;
        n++;
        if (keep) keep(pid, e->d_name, &sx);
    }
    closedir(fdd);
    return n;
}

static void keep_fd(int pid, const char *name, const struct statx *sx) {
    if (nfds == capfds) {
        capfds = capfds ? capfds * 2 : 8192;
        fds = realloc(fds, capfds * sizeof *fds);
    }
    fds[nfds++] = (FD){pid, atoi(name), ((uint64_t)sx->stx_dev_major << 32) | sx->stx_dev_minor, sx->stx_ino};
}

static void list_fds(void) {
    double t0 = now();
    DIR *proc = opendir("/proc");
    struct dirent *d;
    while ((d = readdir(proc))) {
        if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
        statx_fds(atoi(d->d_name), keep_fd);
    }
    closedir(proc);
    t_fds = now() - t0;
}

// `why`'s floor: the same statx of every fd, on two threads (pids dealt alternately: the
// processes with many fds are often neighbours), counted and dropped.
typedef struct { int *pids; int n, first; size_t count; } FDHalf;

static void *statx_half(void *arg) {
    FDHalf *h = arg;
    for (int i = h->first; i < h->n; i += 2) h->count += statx_fds(h->pids[i], NULL);
    return NULL;
}

static double t_fds_two;

static void list_fds_two(void) {
    double t0 = now();
    int *pids = NULL, n = 0, cap = 0;
    DIR *proc = opendir("/proc");
    struct dirent *d;
    while ((d = readdir(proc))) {
        if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
        if (n == cap) pids = realloc(pids, (cap = cap ? cap * 2 : 1024) * sizeof *pids);
        pids[n++] = atoi(d->d_name);
    }
    closedir(proc);
    FDHalf halves[2] = {{pids, n, 0, 0}, {pids, n, 1, 0}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, statx_half, &halves[k]);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    free(pids);
    t_fds_two = now() - t0;
}

static void read_dirs(void) {
    double t0 = now();
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    for (int k = 0; k < nlockdirs + nimagedirs; k++) {
        int is_image = k >= nlockdirs;
        const char *dir = is_image ? imagedirs[k - nlockdirs] : lockdirs[k];
        DIR *dd = opendir(dir);
        if (!dd) continue;
        struct dirent *e;
        while ((e = readdir(dd))) {
            if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
            dir_entries++;
            if (!is_image) continue;
            if (nnames == cap) names = realloc(names, (cap = cap ? cap * 2 : 4096) * sizeof *names);
            size_t dl = strlen(dir), nl = strlen(e->d_name);
            char *full = malloc(dl + nl + 2);
            memcpy(full, dir, dl);
            full[dl] = '/';
            memcpy(full + dl + 1, e->d_name, nl + 1);
            names[nnames++] = full;
        }
        closedir(dd);
    }
    t_dirs = now() - t0;
    t0 = now();
    unsigned char md[SHA_DIGEST_LENGTH];
    unsigned sink = 0;
    for (size_t i = 0; i < nnames; i++) {
        SHA1((unsigned char *)names[i], strlen(names[i]), md);
        sink += md[0];
        free(names[i]);
    }
    free(names);
    t_sha = now() - t0;
    if (sink == 0xffffffff) puts("");
}

static void *list_b(void *arg) {
    (void)arg;
    list_fds();
    read_dirs();
    return NULL;
}

// ---- the holders' fdinfo
static int cmp_locked(const void *a, const void *b) {
    const Locked *x = a, *y = b;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static const Locked *find_locked(uint64_t ino) {
    Locked key = {0, ino, 0};
    return bsearch(&key, locked, nlocked, sizeof *locked, cmp_locked);
}

typedef struct { size_t from, to; size_t fdinfo, lstats; } Part;

static void *holders(void *arg) {
    Part *part = arg;
    char path[96], buf[4096];
    for (size_t i = part->from; i < part->to; i++) {
        const Locked *l = find_locked(fds[i].ino);
        if (!l) continue;
        if (l->needs_fdinfo) {
            snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", fds[i].pid, fds[i].fd);
            int f = open(path, O_RDONLY | O_CLOEXEC);
            if (f < 0) continue;
            ssize_t n = read(f, buf, sizeof buf);
            (void)n;
            close(f);
            part->fdinfo++;
        } else {
            struct stat st;
            snprintf(path, sizeof path, "/proc/%d/fd/%d", fds[i].pid, fds[i].fd);
            lstat(path, &st);
            part->lstats++;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int runs = 5, i = 1;
    int alone = 0;
    for (;;) {
        if (i + 1 < argc && strcmp(argv[i], "--runs") == 0) {
            runs = atoi(argv[i + 1]);
            i += 2;
        } else if (i < argc && strcmp(argv[i], "--alone") == 0) {
            alone = 1;
            i++;
        } else {
            break;
        }
    }
    lockdirs = argv + i;
    for (; i < argc && strcmp(argv[i], "--"); i++) nlockdirs++;
    if (i < argc) i++;
    imagedirs = argv + i;
    nimagedirs = argc - i;
    double *total = calloc(runs, sizeof *total), *table = calloc(runs, sizeof *table), *fdsT = calloc(runs, sizeof *fdsT),
           *dirsT = calloc(runs, sizeof *dirsT), *shaT = calloc(runs, sizeof *shaT), *holdT = calloc(runs, sizeof *holdT);
    size_t fdinfo = 0, lstats = 0;
    for (int r = 0; r < runs; r++) {
        nlocked = nfds = table_rows = dir_entries = 0;
        usleep(300000);  // the table cold, as a fresh run finds it (scripts/bench: COLD)
        if (alone) {
            read_table(NULL);
            usleep(300000);
            list_fds();
            usleep(300000);
            list_fds_two();
            table[r] = t_table;
            fdsT[r] = t_fds;
            dirsT[r] = t_fds_two;
            continue;
        }
        double t0 = now();
        pthread_t a, b;
        pthread_create(&a, NULL, read_table, NULL);
        pthread_create(&b, NULL, list_b, NULL);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        qsort(locked, nlocked, sizeof *locked, cmp_locked);
        double t1 = now();
        Part parts[2] = {{0, nfds / 2, 0, 0}, {nfds / 2, nfds, 0, 0}};
        pthread_t h[2];
        for (int k = 0; k < 2; k++) pthread_create(&h[k], NULL, holders, &parts[k]);
        for (int k = 0; k < 2; k++) pthread_join(h[k], NULL);
        fdinfo = parts[0].fdinfo + parts[1].fdinfo;
        lstats = parts[0].lstats + parts[1].lstats;
        total[r] = now() - t0;
        holdT[r] = now() - t1;
        table[r] = t_table;
        fdsT[r] = t_fds;
        dirsT[r] = t_dirs;
        shaT[r] = t_sha;
    }
    double *all[] = {total, table, fdsT, dirsT, shaT, holdT};
    for (int k = 0; k < 6; k++) qsort(all[k], runs, sizeof(double), cmp_double);
    int m = runs / 2;
    if (alone) {
        printf("alone (median of %d): /proc/locks %.1f ms (%zu rows) | fds %.1f ms (%zu statx) | fds on 2 threads %.1f ms\n",
               runs, table[m], table_rows, fdsT[m], nfds, dirsT[m]);
        return 0;
    }
    printf("floor %.1f ms (median of %d): /proc/locks %.1f ms (%zu rows) | fds %.1f ms (%zu statx), dirs %.1f ms "
           "(%zu entries), sha1 %.1f ms | then holders %.1f ms on 2 threads (%zu fdinfo, %zu lstat)\n",
           total[m], runs, table[m], table_rows, fdsT[m], nfds, dirsT[m], dir_entries, shaT[m], holdT[m], fdinfo, lstats);
    return 0;
}
