// libncursesw, loaded on first use (see CCurses.h).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "CCurses.h"

/* Every function used: one list for the table of pointers and for binding them. */
#define CURSES_FUNCTIONS(X) \
    X(newterm)              \
    X(raw)                  \
    X(noecho)               \
    X(nonl)                 \
    X(keypad)               \
    X(curs_set)             \
    X(has_colors)           \
    X(start_color)          \
    X(use_default_colors)   \
    X(init_pair)            \
    X(werase)               \
    X(endwin)               \
    X(wtimeout)             \
    X(wget_wch)             \
    X(mvwaddstr)            \
    X(wrefresh)             \
    X(wattrset)             \
    X(getmaxy)              \
    X(getmaxx)

#define FIELD(name) __typeof__(&name) name;
static struct {
    CURSES_FUNCTIONS(FIELD)
    WINDOW **stdscr;
} api;
#undef FIELD

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];
static const char *unavailable;

static void load(void) {
    void *lib = dlopen("libncursesw.so.6", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(failure, sizeof failure, "%s", dlerror());
        unavailable = failure;
        return;
    }
#define BIND(name)                                                                  \
    if (!(api.name = (__typeof__(api.name))dlsym(lib, #name))) {                    \
        snprintf(failure, sizeof failure, "libncursesw.so.6 has no %s", #name);     \
        unavailable = failure;                                                      \
        return;                                                                     \
    }
    CURSES_FUNCTIONS(BIND)
#undef BIND
    if (!(api.stdscr = (WINDOW **)dlsym(lib, "stdscr"))) {
        snprintf(failure, sizeof failure, "libncursesw.so.6 has no stdscr");
        unavailable = failure;
    }
}

const char *ccurses_unavailable(void) {
    pthread_once(&once, load);
    return unavailable;
}

#define CALL(fail, call)          \
    if (ccurses_unavailable()) {  \
        return fail;              \
    }                             \
    return call;

SCREEN *ccurses_newterm(void) { CALL(NULL, (api.newterm)(NULL, stdout, stdin)) }
int ccurses_raw(void) { CALL(ERR, (api.raw)()) }
int ccurses_noecho(void) { CALL(ERR, (api.noecho)()) }
int ccurses_nonl(void) { CALL(ERR, (api.nonl)()) }
int ccurses_keypad(bool on) { CALL(ERR, (api.keypad)(*api.stdscr, on)) }
int ccurses_curs_set(int visibility) { CALL(ERR, (api.curs_set)(visibility)) }
bool ccurses_has_colors(void) { CALL(false, (api.has_colors)()) }
int ccurses_start_color(void) { CALL(ERR, (api.start_color)()) }
int ccurses_use_default_colors(void) { CALL(ERR, (api.use_default_colors)()) }
int ccurses_init_pair(short pair, short fg, short bg) { CALL(ERR, (api.init_pair)(pair, fg, bg)) }
int ccurses_erase(void) { CALL(ERR, (api.werase)(*api.stdscr)) }
int ccurses_endwin(void) { CALL(ERR, (api.endwin)()) }
void ccurses_timeout(int delay) {
    if (!ccurses_unavailable()) (api.wtimeout)(*api.stdscr, delay);
}
int ccurses_get_wch(wint_t *ch) { CALL(ERR, (api.wget_wch)(*api.stdscr, ch)) }
int ccurses_mvaddstr(int y, int x, const char *s) { CALL(ERR, (api.mvwaddstr)(*api.stdscr, y, x, s)) }
int ccurses_refresh(void) { CALL(ERR, (api.wrefresh)(*api.stdscr)) }
int ccurses_attrset(attr_t a) { CALL(ERR, (api.wattrset)(*api.stdscr, (int)a)) }
void ccurses_size(int *rows, int *cols) {
    *rows = 0;
    *cols = 0;
    if (ccurses_unavailable() || !*api.stdscr) return;
    *rows = (api.getmaxy)(*api.stdscr);
    *cols = (api.getmaxx)(*api.stdscr);
}
