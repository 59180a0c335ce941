// Signal handlers of `seqtrain train`: see include/stop_signals.h.
#include "stop_signals.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static atomic_int first_signal = 0;
static atomic_int received = 0;

static void say(const char *text) {
    // Best effort: nothing useful can be done in a handler when stderr is gone.
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

static void on_stop_signal(int signo) {
    if (atomic_fetch_add(&received, 1) == 0) {
        atomic_store(&first_signal, signo);
        return;
    }
    // The second signal: the user does not want to wait for the step and the checkpoint.
    say("seqtrain: a second signal: exiting at once, without a checkpoint\n");
    _exit(128 + signo);
}

static void on_quit(int signo) {
    say("seqtrain: SIGQUIT: exiting at once, without writing a checkpoint (--resume continues from the newest one)\n");
    _exit(128 + signo);
}

static int install(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    // Reads, writes and waits the signal interrupts continue rather than fail with EINTR.
    action.sa_flags = SA_RESTART;
    return sigaction(signo, &action, NULL) == 0 ? 0 : errno;
}

int st_stop_signals_install(void) {
    int status = 0;
    const int stops[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned k = 0; k < sizeof stops / sizeof stops[0] && status == 0; k++) {
        status = install(stops[k], on_stop_signal);
    }
    return status == 0 ? install(SIGQUIT, on_quit) : status;
}

int st_stop_signal(void) { return atomic_load(&first_signal); }
