import Foundation

/// Every error seqtrain reports: what was wrong, where, and what to do, in one sentence or two.
public struct SeqTrainError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Writes `text` to stderr with stdio, which reports a failed write instead of trapping as
/// FileHandle.write does (stderr closed, or a full disk behind a redirect).
public func writeStandardError(_ text: String) {
    fputs(text, stderr)
    fflush(stderr)
}

/// "warning: …" on stderr.
public func printWarning(_ text: String) { writeStandardError("warning: \(text)\n") }
