#ifndef LOCKSMITH_CCURSES_H
#define LOCKSMITH_CCURSES_H
/* ncursesw with the wide-character API (ncurses(3X)): both macros must come before
 * the header, or the wide functions and cchar_t are left out. */
#define _XOPEN_SOURCE_EXTENDED 1
#define NCURSES_WIDECHAR 1
#include <ncursesw/curses.h>
#include <locale.h>
#include <langinfo.h>
#include <signal.h>

/* stdscr, LINES and COLS are mutable C globals: Swift 6 refuses to touch them from
 * concurrent code, so they are read through functions. */
static inline WINDOW *ccurses_stdscr(void) { return stdscr; }
static inline int ccurses_lines(void) { return LINES; }
static inline int ccurses_cols(void) { return COLS; }

/* newterm on the process's stdout/stdin (C globals Swift 6 refuses, like stdscr).
 * Unlike initscr it returns NULL for an unusable TERM instead of exiting. */
static inline SCREEN *ccurses_newterm(void) { return newterm(NULL, stdout, stdin); }

/* getmaxyx is a macro that assigns to its arguments. */
static inline void ccurses_size(int *rows, int *cols) {
    int y, x;
    getmaxyx(stdscr, y, x);
    *rows = y;
    *cols = x;
}

/* Attribute and key macros Swift cannot import (they expand to expressions). */
static inline attr_t ccurses_a_normal(void) { return A_NORMAL; }
static inline attr_t ccurses_a_reverse(void) { return A_REVERSE; }
static inline attr_t ccurses_a_bold(void) { return A_BOLD; }
static inline attr_t ccurses_a_dim(void) { return A_DIM; }
static inline attr_t ccurses_a_underline(void) { return A_UNDERLINE; }
static inline attr_t ccurses_color_pair(short n) { return COLOR_PAIR(n); }
static inline int ccurses_key_f(int n) { return KEY_F(n); }

/* attrset is a macro in some configurations; give Swift one typed entry. */
static inline int ccurses_attrset(attr_t a) { return attrset(a); }

/* setlocale(LC_ALL, "") and whether the resulting charset is UTF-8. */
static inline int ccurses_setlocale_utf8(void) {
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    return cs && (cs[0] == 'U' || cs[0] == 'u') && (cs[1] == 'T' || cs[1] == 't') &&
           (cs[2] == 'F' || cs[2] == 'f');
}
#endif
