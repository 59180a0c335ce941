import Foundation

/// Debug mode (`train --debug`): every collective first exchanges a fingerprint (sequence number,
/// operation, element count) with every rank, so a rank that calls another collective than the
/// others is stopped with both sides named, instead of hanging or reducing mismatched buffers.
public final class CheckedCommunicator: Communicator {
    let inner: Communicator
    var sequence = 0

    public init(_ inner: Communicator) { self.inner = inner }

    public var rank: Int { inner.rank }
    public var size: Int { inner.size }
    public var ranks: Int { inner.ranks }
    public var workersPerRank: Int { inner.workersPerRank }
    public func name(of participant: Int) -> String { inner.name(of: participant) }
    public func shareWithinProcess(_ buffers: [FloatBuffer]) throws -> [FloatBuffer] { try inner.shareWithinProcess(buffers) }
    public var writesSharedState: Bool { inner.writesSharedState }
    public func updateRange(count: Int) -> Range<Int> { inner.updateRange(count: count) }
    public func synchronizeProcess() throws { try inner.synchronizeProcess() }

    enum Operation: Int64, CaseIterable {
        case allReduceFloats = 1, allReduceDoubles, startAllReduceFloats, broadcast, allGather, barrier
        var name: String {
            switch self {
            case .allReduceFloats: return "all-reduce of floats"
            case .allReduceDoubles: return "all-reduce of doubles"
            case .startAllReduceFloats: return "non-blocking all-reduce of floats"
            case .broadcast: return "broadcast"
            case .allGather: return "all-gather"
            case .barrier: return "barrier"
            }
        }
    }

    /// Exchanges (sequence, operation, count) and throws, on every rank alike, when they differ.
    func check(_ operation: Operation, count: Int) throws {
        sequence += 1
        guard size > 1 else { return }
        var mine = [Int64(sequence), operation.rawValue, Int64(count)]
        let bytes = mine.withUnsafeBytes { Array($0) }
        mine.removeAll()
        let all = try inner.allGather(bytes).map { raw in raw.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }
        guard let reference = all.first, let other = all.firstIndex(where: { $0 != reference }) else { return }
        func describe(_ f: [Int64]) -> String {
            guard f.count == 3 else { return "an unreadable fingerprint" }
            return "\(Operation(rawValue: f[1])?.name ?? "operation \(f[1])") of \(f[2]) element(s) as collective #\(f[0])"
        }
        throw SeqTrainError("collective mismatch: \(name(of: 0)) called \(describe(reference)), \(name(of: other)) called \(describe(all[other])); every rank must call the same collectives in the same order")
    }

    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        try check(.allReduceFloats, count: count)
        try inner.allReduceSum(values, count: count)
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        try check(.allReduceDoubles, count: values.count)
        try inner.allReduceSum(&values)
    }

    public func startAllReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction {
        try check(.startAllReduceFloats, count: count)
        return try inner.startAllReduceSum(values, count: count)
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        try check(.broadcast, count: bytes.count)
        try inner.broadcast(&bytes, root: root)
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        try check(.allGather, count: bytes.count)
        return try inner.allGather(bytes)
    }

    public func barrier() throws {
        try check(.barrier, count: 0)
        try inner.barrier()
    }

    public func abort(code: Int32) -> Never { inner.abort(code: code) }

    public func beginStep(_ step: Int) throws { try inner.beginStep(step) }
}
