// How `seqtrain train` is asked to stop (stop_signals.c). The handlers only touch atomics and call
// write(2) and _exit(2), which are async-signal-safe; the trainer reads the request once per step.
//
// SIGINT, SIGTERM, SIGHUP: the first asks for a stop after the current step (with a checkpoint);
// a second one of any of them exits at once with 128 + its number. SIGQUIT exits at once (131)
// with a one-line message, instead of the Swift runtime's crash backtrace.
#ifndef SEQTRAIN_STOP_SIGNALS_H
#define SEQTRAIN_STOP_SIGNALS_H

/// Installs the handlers (sigaction, SA_RESTART). Returns 0, or the errno of the failing call.
int st_stop_signals_install(void);

/// The first stop signal received (SIGINT, SIGTERM or SIGHUP), 0 while none has arrived.
int st_stop_signal(void);

#endif
