import Foundation

/// The collectives training needs. Every rank calls them in the same order; the single-process
/// implementation is world size 1 of the same code path.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over ranks of `count` floats.
    func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws
    /// In-place sum over ranks of a few doubles (loss totals, counts).
    func allReduceSum(_ values: inout [Double]) throws
    /// Starts an in-place float sum; `wait` the returned handle before reading the values.
    func startAllReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction
    /// Rank `root`'s bytes on every rank.
    func broadcast(_ bytes: inout [UInt8], root: Int) throws
    /// Every rank's bytes (all the same length), in rank order.
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
    func barrier() throws
    /// Ends every rank of the job.
    func abort(code: Int32) -> Never
    /// Marks the start of training step `step` (the watchdog names ranks that never reach it).
    func beginStep(_ step: Int) throws
}

extension Communicator {
    public func beginStep(_ step: Int) throws {}

    /// Runs `body` on every rank; when it fails on any rank, every rank throws one error naming the
    /// failing ranks and their messages, so no rank is left waiting in a later collective.
    public func agree(_ body: () throws -> Void) throws {
        var message = ""
        do { try body() } catch { message = "\(error)" }
        guard size > 1 else {
            if !message.isEmpty { throw SeqTrainError(message) }
            return
        }
        var bytes = Array(message.utf8.prefix(4096))
        bytes += [UInt8](repeating: 0, count: 4096 - bytes.count)
        let all = try allGather(bytes)
        let failures = all.enumerated().compactMap { rank, raw -> String? in
            let text = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            return text.isEmpty ? nil : "rank \(rank): \(text)"
        }
        if !failures.isEmpty { throw SeqTrainError(failures.joined(separator: "\n")) }
    }
}

/// A non-blocking collective under way.
public protocol PendingReduction {
    /// True once finished; lets MPI progress the operation.
    mutating func test() throws -> Bool
    mutating func wait() throws
}

/// World size 1: every collective is the identity, and no MPI call is made.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allReduceSum(_ values: inout [Double]) throws {}
    public func startAllReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction { Done() }
    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {}
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }

    struct Done: PendingReduction {
        mutating func test() throws -> Bool { true }
        mutating func wait() throws {}
    }
}
