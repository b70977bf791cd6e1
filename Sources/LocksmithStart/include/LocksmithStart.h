#ifndef LOCKSMITH_START_H
#define LOCKSMITH_START_H
/* Whether the executable's start (start.c) reads the kernel's lock table early for these
 * arguments (argv[0] the program): `list` and `audit` unless an argument starts with --proc,
 * --host, --list-columns, --help or -h. Linked into the executable only. */
int locksmith_start_reads_table(int argc, char **argv);
#endif
