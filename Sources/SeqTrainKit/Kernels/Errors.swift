/// Every error seqtrain reports: what was wrong, where, and what to do, in one sentence or two.
public struct SeqTrainError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
