/// Sums the gradient arena over ranks in buckets while backward is still running: a model reports
/// each offset from which the arena's gradients are final (backward runs in reverse layout order),
/// a non-blocking all-reduce starts on that bucket at once, and `finish` waits for all of them in
/// the order they were issued, which is the same on every rank.
public final class GradientReducer {
    let communicator: Communicator
    let arena: ParameterArena
    private var pendingEnd = 0
    private var pending: [PendingReduction] = []
    private var failure: Error?
    /// Seconds spent in `finish` waiting for reductions in the last step.
    public private(set) var lastWaitSeconds = 0.0

    public init(communicator: Communicator, arena: ParameterArena) {
        self.communicator = communicator
        self.arena = arena
    }

    public var isActive: Bool { communicator.size > 1 }

    public func beginStep() {
        pendingEnd = arena.count
        pending.removeAll(keepingCapacity: true)
        failure = nil
    }

    /// Gradients from `offset` up to the previous bucket are final: start summing them.
    public func ready(from offset: Int) {
        guard isActive, offset < pendingEnd, failure == nil else { return }
        do {
            pending.append(try communicator.startAllReduceSum(arena.gradients.pointer + offset, count: pendingEnd - offset))
        } catch {
            failure = error
        }
        pendingEnd = offset
        progress()
    }

    /// Lets MPI move the reductions under way forward.
    public func progress() {
        for i in pending.indices { _ = try? pending[i].test() }
    }

    /// Starts whatever is left and waits for every bucket.
    public func finish() throws {
        guard isActive else { return }
        let start = Benchmark.now()
        ready(from: 0)
        if let failure { throw failure }
        for i in pending.indices { try pending[i].wait() }
        lastWaitSeconds = Benchmark.now() - start
    }
}
