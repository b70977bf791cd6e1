/* The executable's start, before main: `locksmith list` and `audit` start reading the
 * kernel's lock table here, within about a millisecond of exec, not from main ~2.5 ms in: its
 * first read after idle waits for an RCU grace period, and asked for this early it shares the
 * one exec's own RCU work starts instead of waiting for that one and the next (CLinux.h, "The
 * early read"). The read runs on a thread of its own while the arguments are parsed and the
 * rest is scanned; the scan takes it (Inspector.prefetchKernelTable) or, when the arguments
 * turn out not to scan this host's /proc, nobody does and it ends with the process.
 * Not for a `list` or `audit` that would not use it (another proc root, a cluster view,
 * help): on a big host the read is ~0.3 s of a core spent for nothing. Not for `why`: it
 * reads its image's locks from their holders' fdinfo and the table only when that is not the
 * whole answer (FocusedLockSource), and a read started here would hold its exit until the
 * grace period passed. */
#include "CLinux.h"  /* first: it defines _GNU_SOURCE */
#include <string.h>
#include "LocksmithStart.h"

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int locksmith_start_reads_table(int argc, char **argv) {
    if (argc < 2 || !argv || !argv[1]) return 0;
    if (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "audit") != 0) return 0;
    static const char *const unused[] = {"--proc", "--host", "--list-columns", "--help", "-h"};
    for (int i = 2; i < argc && argv[i]; i++)
        for (size_t k = 0; k < sizeof unused / sizeof *unused; k++)
            if (starts_with(argv[i], unused[k])) return 0;
    return 1;
}

__attribute__((constructor)) static void locksmith_start(int argc, char **argv, char **envp) {
    (void)envp;
    if (!locksmith_start_reads_table(argc, argv)) return;
    /* One malloc arena before the first thread, as Locksmith.main sets for every command
     * (Sys.useOneHeapArena): the scan's threads share one heap. */
    clinux_limit_heap_arenas(1);
    (void)clinux_early_read_start("/proc/locks");
}
