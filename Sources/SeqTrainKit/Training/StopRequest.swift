import CKernels
import Foundation

/// Whether the run was asked to stop, and by which signal: the trainer reads it once per step and
/// folds it into that step's loss-totals all-reduce, so every replica stops after the same step.
public protocol StopRequest: AnyObject {
    /// SIGINT, SIGTERM or SIGHUP once one was received; 0 before.
    var signal: Int32 { get }
}

/// The stop request of `seqtrain train`: handlers for SIGINT, SIGTERM and SIGHUP (a stop after the
/// current step; a second signal exits at once) and SIGQUIT (exits at once, without a backtrace).
/// The handlers are C (CKernels/stop_signals.c): they only set an atomic, write and exit.
public final class SignalStopRequest: StopRequest {
    private init() {}

    /// Installs the handlers for the whole process; call once, before training starts.
    public static func install() throws -> SignalStopRequest {
        let status = st_stop_signals_install()
        guard status == 0 else {
            throw SeqTrainError("cannot install the signal handlers: \(String(cString: strerror(status)))")
        }
        return SignalStopRequest()
    }

    public var signal: Int32 { Int32(st_stop_signal()) }
}

/// How a stopped run ends: the name a user knows the signal by, and the shell's exit status for it.
public enum StopSignal {
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        case SIGQUIT: return "SIGQUIT"
        default: return "signal \(signal)"
        }
    }

    /// 128 + the signal's number, as a shell reports a process the signal ended (130, 143, 129).
    public static func exitStatus(_ signal: Int32) -> Int32 { 128 + signal }
}
