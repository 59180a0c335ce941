import Foundation

/// The collectives training needs. Every participant calls them in the same order; the
/// single-process implementation is world size 1 of the same code path.
///
/// A participant is one model replica: an MPI rank, or a worker thread of a rank
/// (`training.workers`). `rank` and `size` count participants (ranks × workers per rank); the
/// worker threads of one process share one copy of the parameters and the optimizer state, which
/// each updates in its own slice (`updateRange`), while every rank owns a whole copy.
public protocol Communicator: AnyObject {
    /// This participant's index, 0..<size.
    var rank: Int { get }
    /// Participants in the job: ranks × workers per rank.
    var size: Int { get }
    /// MPI ranks (processes) in the job.
    var ranks: Int { get }
    /// Worker threads per rank.
    var workersPerRank: Int { get }
    /// How participant `participant` is named in messages: "rank 1", "worker 1", "rank 1 worker 0".
    func name(of participant: Int) -> String
    /// The buffers every participant of this process uses from now on: the first worker's for
    /// worker threads (one shared copy); a rank's own otherwise.
    func shareWithinProcess(_ buffers: [FloatBuffer]) throws -> [FloatBuffer]
    /// Whether this participant writes what the participants of its process share (parameters,
    /// optimizer state) when it is loaded or broadcast: every rank; of worker threads, the first.
    var writesSharedState: Bool { get }
    /// The part of a shared arena of `count` floats that this participant updates: all of it for
    /// a rank, a slice for a worker thread.
    func updateRange(count: Int) -> Range<Int>
    /// Waits for the participants of this process (after each updated its slice); nothing for a rank.
    func synchronizeProcess() throws
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
    public var ranks: Int { size }
    public var workersPerRank: Int { 1 }
    public func name(of participant: Int) -> String { "rank \(participant)" }
    public func shareWithinProcess(_ buffers: [FloatBuffer]) throws -> [FloatBuffer] { buffers }
    public var writesSharedState: Bool { true }
    public func updateRange(count: Int) -> Range<Int> { 0..<count }
    public func synchronizeProcess() throws {}

    /// "1 rank × 2 workers" for the first lines of a run.
    public var participantsSummary: String {
        "\(ranks) rank\(ranks == 1 ? "" : "s") × \(workersPerRank) worker\(workersPerRank == 1 ? "" : "s")"
    }

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
        let messages = all.map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        // The same error everywhere (a bad config read by every worker) is said once.
        if let first = messages.first, !first.isEmpty, messages.allSatisfy({ $0 == first }) { throw SeqTrainError(first) }
        let failures = messages.enumerated().compactMap { rank, text -> String? in text.isEmpty ? nil : "\(name(of: rank)): \(text)" }
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
