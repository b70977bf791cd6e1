/* The early read (CLinux.h): one pseudo-file read whole on a thread of its own, started
 * before main by the executable's start-up constructor (Sources/LocksmithStart/start.c). */
#include "CLinux.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    pthread_t thread;
    int state;  /* 0 none, 1 under way or done, 2 taken */
    char path[256];
    unsigned char *bytes;
    size_t count;
    int err;
    double seconds;
    /* The CPUs the reader may run on, given back to it as it starts (see early_read_start). */
    cpu_set_t allowed;
    int restore;
    /* Where the creator was and the reader started, and how many CPUs the reader then had. */
    int creator_cpu, reader_cpu, reader_cpus;
} early;

static double early_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* As Sys.readToEnd (FileReads.swift): up to 64 KB a read, EINTR retried, a failing read ends
 * it (what was read, or nothing with its errno); the buffer grows only when full. */
static void *early_read(void *unused) {
    (void)unused;
    early.reader_cpu = sched_getcpu();
    if (early.restore) (void)clinux_set_affinity(&early.allowed);
    cpu_set_t now;
    early.reader_cpus = sched_getaffinity(0, sizeof now, &now) == 0 ? CPU_COUNT(&now) : -1;
    double t0 = early_now();
    int fd = open(early.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        early.err = errno;
    } else {
        size_t cap = 65536, got = 0;
        unsigned char *buf = malloc(cap);
        while (buf) {
            if (got == cap) {
                unsigned char *more = realloc(buf, cap * 2);
                if (!more) { free(buf); buf = NULL; early.err = ENOMEM; break; }
                buf = more;
                cap *= 2;
            }
            ssize_t n = read(fd, buf + got, cap - got < 65536 ? cap - got : 65536);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (got == 0) { early.err = errno; free(buf); buf = NULL; }
                break;
            }
            if (n == 0) break;
            got += (size_t)n;
        }
        if (!buf && !early.err) early.err = ENOMEM;
        close(fd);
        early.bytes = buf;
        early.count = buf ? got : 0;
    }
    early.seconds = early_now() - t0;
    return NULL;
}

int clinux_early_read_start(const char *path) {
    if (__atomic_load_n(&early.state, __ATOMIC_ACQUIRE) == 1) return EBUSY;
    size_t n = strlen(path);
    if (n >= sizeof early.path) return ENAMETOOLONG;
    memcpy(early.path, path, n + 1);
    early.bytes = NULL;
    early.count = 0;
    early.err = 0;
    early.seconds = 0;
    /* The reader starts on another CPU than its creator's: a new thread is otherwise often
     * queued on its creator's CPU, and asks for the table only when the creator next sleeps
     * (~0.7 ms later in a traced run, another CPU idle meanwhile). It takes back all its
     * CPUs as it starts. */
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    early.creator_cpu = sched_getcpu();
    early.restore = have_attr && clinux_attr_start_off_current_cpu(&attr, &early.allowed);
    int rc = pthread_create(&early.thread, have_attr ? &attr : NULL, early_read, NULL);
    if (have_attr) (void)pthread_attr_destroy(&attr);
    if (rc == 0) __atomic_store_n(&early.state, 1, __ATOMIC_RELEASE);
    return rc;
}

int clinux_early_read_running(const char *path) {
    return __atomic_load_n(&early.state, __ATOMIC_ACQUIRE) == 1 && strcmp(early.path, path) == 0;
}

int clinux_early_read_take(const char *path, unsigned char **bytes, size_t *count, int *err, double *seconds) {
    *bytes = NULL;
    *count = 0;
    *err = 0;
    *seconds = 0;
    int running = 1;
    if (!clinux_early_read_running(path) ||
        !__atomic_compare_exchange_n(&early.state, &running, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;  /* none, or another thread took it */
    (void)pthread_join(early.thread, NULL);
    *bytes = early.bytes;
    *count = early.count;
    *err = early.err;
    *seconds = early.seconds;
    early.bytes = NULL;
    return 1;
}

void clinux_early_read_cpus(int *creator, int *reader, int *reader_cpus) {
    *creator = early.creator_cpu;
    *reader = early.reader_cpu;
    *reader_cpus = early.reader_cpus;
}

/* The CPUs the thread may run on but for the one it is kept off (-1: none; -2: not read
 * yet). An affinity set on it since by anyone else (taskset -p) becomes the new base. */
static __thread cpu_set_t keep_off_allowed;
static __thread int keep_off_cpu = -2;

int clinux_keep_off_cpu(int cpu) {
    if (cpu == keep_off_cpu) return 0;
    cpu_set_t now;
    if (sched_getaffinity(0, sizeof now, &now) != 0) return -1;
    if (keep_off_cpu == -2) {
        keep_off_allowed = now;
    } else {
        cpu_set_t mine = keep_off_allowed;
        if (keep_off_cpu >= 0) CPU_CLR(keep_off_cpu, &mine);
        if (!CPU_EQUAL(&now, &mine)) keep_off_allowed = now;
    }
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &keep_off_allowed) || CPU_COUNT(&keep_off_allowed) < 2) cpu = -1;
    cpu_set_t set = keep_off_allowed;
    if (cpu >= 0) CPU_CLR(cpu, &set);
    if (!CPU_EQUAL(&set, &now) && sched_setaffinity(0, sizeof set, &set) != 0) return -1;
    keep_off_cpu = cpu;
    return 0;
}
