#ifndef LOCKSMITH_CCURSES_H
#define LOCKSMITH_CCURSES_H
/* ncursesw with the wide-character API (ncurses(3X)), loaded on first use rather than
 * linked: linked, libncursesw and libtinfo were loaded and relocated at every start of
 * locksmith (~0.5M instructions), also for every command but the TUI. The header gives the
 * types, key codes and attribute bits; Swift calls curses only through the ccurses_*
 * functions below, which call the library's own, bound by dlsym (the default version, what
 * the linker would have bound). Both macros must come before the header, or the wide
 * functions and cchar_t are left out. */
#define _XOPEN_SOURCE_EXTENDED 1
#define NCURSES_WIDECHAR 1
#include <ncursesw/curses.h>
#include <locale.h>
#include <langinfo.h>
#include <signal.h>

/* NULL once libncursesw is loaded (by the first call of any ccurses_* function that calls
 * curses); else why it cannot be (dlerror's text). The others then fail (ERR, NULL, 0). */
const char *ccurses_unavailable(void);

/* newterm on the process's stdout/stdin. Unlike initscr it returns NULL for an unusable
 * TERM instead of exiting. */
SCREEN *ccurses_newterm(void);
int ccurses_raw(void);
int ccurses_noecho(void);
int ccurses_nonl(void);
/* keypad, erase, timeout, get_wch, mvaddstr, refresh, attrset and getmaxyx on stdscr. */
int ccurses_keypad(bool on);
int ccurses_curs_set(int visibility);
bool ccurses_has_colors(void);
int ccurses_start_color(void);
int ccurses_use_default_colors(void);
int ccurses_init_pair(short pair, short fg, short bg);
int ccurses_erase(void);
int ccurses_endwin(void);
void ccurses_timeout(int delay);
int ccurses_get_wch(wint_t *ch);
int ccurses_mvaddstr(int y, int x, const char *s);
int ccurses_refresh(void);
int ccurses_attrset(attr_t a);
void ccurses_size(int *rows, int *cols);

/* Attribute and key macros Swift cannot import (they expand to expressions): bit
 * arithmetic only, no call into the library. */
static inline attr_t ccurses_a_normal(void) { return A_NORMAL; }
static inline attr_t ccurses_a_reverse(void) { return A_REVERSE; }
static inline attr_t ccurses_a_bold(void) { return A_BOLD; }
static inline attr_t ccurses_a_dim(void) { return A_DIM; }
static inline attr_t ccurses_a_underline(void) { return A_UNDERLINE; }
static inline attr_t ccurses_color_pair(short n) { return COLOR_PAIR(n); }
static inline int ccurses_key_f(int n) { return KEY_F(n); }

/* setlocale(LC_ALL, "") and whether the resulting charset is UTF-8. */
static inline int ccurses_setlocale_utf8(void) {
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    return cs && (cs[0] == 'U' || cs[0] == 'u') && (cs[1] == 'T' || cs[1] == 't') &&
           (cs[2] == 'F' || cs[2] == 'f');
}
#endif
