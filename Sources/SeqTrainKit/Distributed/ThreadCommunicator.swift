import CKernels
import Foundation

/// The worker threads of one process (`training.workers`): a barrier and, per worker, two
/// mailboxes used by alternate collectives, so that a worker may publish for the next collective
/// while another still reads this one. A worker writes only its own mailbox; the barrier orders
/// those writes before the others read them.
public final class WorkerGroup {
    public let size: Int
    let barrier: OpaquePointer
    let mailboxes: [[Mailbox]]  // [worker][collective parity]

    final class Mailbox {
        var floats: UnsafeMutablePointer<Float>?
        var count = 0
        var doubles: [Double] = []
        var bytes: [UInt8] = []
        var buffers: [FloatBuffer] = []
        /// What worker 0 brings back from the other ranks in a hybrid run.
        var fromRanks: [[UInt8]] = []
    }

    /// Another worker failed: this one stops at its collective without an error of its own.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "stopped: another worker of this process failed" }
    }

    public init(size: Int) throws {
        guard size >= 1, let barrier = st_worker_barrier_create(Int32(clamping: size)) else {
            throw SeqTrainError("cannot set up \(size) worker thread(s)")
        }
        self.size = size
        self.barrier = barrier
        mailboxes = (0..<size).map { _ in [Mailbox(), Mailbox()] }
    }

    deinit { st_worker_barrier_destroy(barrier) }

    /// Stops the others at their next collective; true for the first caller.
    @discardableResult
    public func fail() -> Bool { st_worker_barrier_fail(barrier) != 0 }

    /// Runs `body` on `size` threads, worker 0 on the calling thread (MPI calls stay on the thread
    /// that initialized MPI), each with its own communicator, and waits for all of them. A worker
    /// whose body throws fails the group, so the others stop at their next collective. Returns each
    /// worker's error (nil when it finished).
    public func run(inner: Communicator?, timeout: Double, _ body: @escaping (ThreadCommunicator) throws -> Void) -> [Error?] {
        // One box per worker: each thread writes only its own.
        final class Outcome: @unchecked Sendable { var error: Error? }
        let outcomes = (0..<size).map { _ in Outcome() }
        let done = DispatchSemaphore(value: 0)
        @Sendable func work(_ worker: Int) {
            FloatEnvironment.flushDenormals()
            let communicator = ThreadCommunicator(group: self, worker: worker, inner: inner, timeout: timeout)
            do { try body(communicator) } catch {
                outcomes[worker].error = error
                fail()
            }
        }
        var threads: [Thread] = []
        for worker in 1..<max(size, 1) {
            let thread = Thread { work(worker); done.signal() }
            thread.stackSize = 16 << 20
            thread.name = "seqtrain worker \(worker)"
            threads.append(thread)
        }
        threads.forEach { $0.start() }
        work(0)
        for _ in threads { done.wait() }
        return outcomes.map(\.error)
    }
}

/// The communicator of one worker thread: the collectives run over the workers of this process in
/// shared memory and, in a hybrid run (`inner` set: ranks × workers), over the ranks through
/// worker 0, which alone calls MPI. Participant index = rank · workers + worker, so sharding,
/// lanes and dropout keys see one flat set of replicas.
///
/// A float sum: every worker publishes its buffer; each worker adds one slice (a 16-float-aligned
/// 1/W of the buffer) of all the buffers in worker order and writes it into every buffer, so no
/// lock is taken and the result does not depend on timing. Hybrid: the slices are summed into
/// worker 0's buffer, worker 0 sums it over the ranks, then every worker copies its slice out.
public final class ThreadCommunicator: Communicator {
    public let group: WorkerGroup
    public let worker: Int
    /// The communicator between the processes of a hybrid run; nil when this process is the job.
    public let inner: Communicator?
    /// Seconds a collective may wait for the other workers before the job is ended.
    public var timeout: Double
    private var sequence = 0
    /// Seconds this worker spent adding and copying its slices of float sums (not waiting).
    public private(set) var reductionSeconds = 0.0

    public init(group: WorkerGroup, worker: Int, inner: Communicator? = nil, timeout: Double = 300) {
        self.group = group
        self.worker = worker
        self.inner = inner
        self.timeout = timeout
    }

    public var rank: Int { (inner?.rank ?? 0) * group.size + worker }
    public var size: Int { (inner?.size ?? 1) * group.size }
    public var ranks: Int { inner?.size ?? 1 }
    public var workersPerRank: Int { group.size }

    public func name(of participant: Int) -> String {
        inner == nil ? "worker \(participant)" : "rank \(participant / group.size) worker \(participant % group.size)"
    }

    public var writesSharedState: Bool { worker == 0 }

    public func updateRange(count: Int) -> Range<Int> { slice(of: count, for: worker) }

    /// Worker `w`'s part of `count` floats: contiguous, split at multiples of 16 floats (64 bytes),
    /// so no two workers write the same cache line.
    func slice(of count: Int, for w: Int) -> Range<Int> {
        let chunk = ((count + group.size - 1) / group.size + 15) / 16 * 16
        return min(w * chunk, count)..<min((w + 1) * chunk, count)
    }

    // MARK: waiting

    /// This collective's mailboxes, one per worker.
    private func begin() -> (mine: WorkerGroup.Mailbox, all: [WorkerGroup.Mailbox]) {
        let parity = sequence & 1
        sequence += 1
        return (group.mailboxes[worker][parity], group.mailboxes.map { $0[parity] })
    }

    /// Waits for every worker of this process. A worker that failed stops this one (`Stopped`); a
    /// wait longer than `timeout` ends the job naming the workers that did not arrive.
    private func wait(_ what: String) throws {
        // In a hybrid run worker 0 may wait for other ranks inside MPI, whose watchdog speaks first.
        let limit = inner == nil ? timeout : timeout * 1.5 + 5
        switch st_worker_barrier_wait(group.barrier, Int32(worker), limit) {
        case 0: return
        case 1: throw WorkerGroup.Stopped()
        default: stalled(what)
        }
    }

    private func stalled(_ what: String) -> Never {
        guard group.fail() else {
            // Another worker is reporting the stall and ending the job.
            while true { sleep(1) }
        }
        let step = st_worker_barrier_step(group.barrier, Int32(worker))
        let missing = (0..<group.size).filter { st_worker_barrier_arrived(group.barrier, Int32($0)) == 0 }
        let behind = missing.filter { st_worker_barrier_step(group.barrier, Int32($0)) < step }
        let names = { (workers: [Int]) in workers.map { self.name(of: (self.inner?.rank ?? 0) * self.group.size + $0) }.joined(separator: ", ") }
        var message = "\(name(of: rank)): \(what) waited more than \(Int(timeout)) s for the other workers (training.collective_timeout_s)"
        if !behind.isEmpty {
            message += "; workers that did not reach step \(step): \(names(behind))"
        } else if !missing.isEmpty {
            message += "; \(names(missing)) reached step \(step) but not this collective, so it is stuck inside the step"
        }
        writeStandardError(message + "; ending the job\n")
        abort(code: 4)
    }

    public func beginStep(_ step: Int) throws {
        st_worker_barrier_note_step(group.barrier, Int32(worker), Int64(step))
        if worker == 0 { try inner?.beginStep(step) }
    }

    // MARK: collectives

    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        let (mine, all) = begin()
        mine.floats = values
        mine.count = count
        try wait("a sum of floats")
        if let other = all.firstIndex(where: { $0.count != count }) {
            throw SeqTrainError("collective mismatch: \(name(of: rank)) sums \(count) floats, \(name(of: rank - worker + other)) \(all[other].count); every worker must call the same collectives in the same order")
        }
        let part = slice(of: count, for: worker)
        let start = Benchmark.now()
        let first = all[0].floats! + part.lowerBound
        // In worker order, so the result is the same on every run.
        for k in 1..<group.size { addInPlace(first, all[k].floats! + part.lowerBound, count: part.count) }
        if inner == nil { for k in 1..<group.size { (all[k].floats! + part.lowerBound).update(from: first, count: part.count) } }
        reductionSeconds += Benchmark.now() - start
        try wait("a sum of floats")
        guard let inner else { return }
        if worker == 0 { try inner.allReduceSum(all[0].floats!, count: count) }
        try wait("a sum of floats over the ranks")
        let copyStart = Benchmark.now()
        for k in 1..<group.size { (all[k].floats! + part.lowerBound).update(from: first, count: part.count) }
        reductionSeconds += Benchmark.now() - copyStart
        try wait("a sum of floats over the ranks")
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        let (mine, all) = begin()
        mine.doubles = values
        try wait("a sum of loss totals")
        let n = values.count
        guard all.allSatisfy({ $0.doubles.count == n }) else {
            throw SeqTrainError("collective mismatch: the workers sum \(all.map(\.doubles.count)) doubles; every worker must call the same collectives in the same order")
        }
        var sum = all[0].doubles
        for k in 1..<group.size { for i in 0..<n { sum[i] += all[k].doubles[i] } }
        guard let inner else {
            values = sum
            return
        }
        if worker == 0 {
            try inner.allReduceSum(&sum)
            mine.fromRanks = [sum.withUnsafeBytes { Array($0) }]
        }
        try wait("a sum of loss totals over the ranks")
        values = all[0].fromRanks[0].withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    public func startAllReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction {
        Deferred(communicator: self, values: values, count: count)
    }

    /// A bucket of the gradient, summed when the trainer waits for it: the workers of one process
    /// finish backward within moments of each other, and the sum itself is a memory pass.
    struct Deferred: PendingReduction {
        let communicator: ThreadCommunicator
        let values: UnsafeMutablePointer<Float>
        let count: Int
        var done = false

        mutating func test() throws -> Bool { done }

        mutating func wait() throws {
            guard !done else { return }
            done = true
            try communicator.allReduceSum(values, count: count)
        }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        let (mine, all) = begin()
        let rootRank = root / group.size, rootWorker = root % group.size
        let isRootRank = (inner?.rank ?? 0) == rootRank
        if isRootRank && worker == rootWorker { mine.bytes = bytes }
        try wait("a broadcast")
        guard let inner else {
            bytes = all[rootWorker].bytes
            return
        }
        if worker == 0 {
            var shared = isRootRank ? all[rootWorker].bytes : []
            try inner.broadcast(&shared, root: rootRank)
            mine.fromRanks = [shared]
        }
        try wait("a broadcast over the ranks")
        bytes = all[0].fromRanks[0]
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        let (mine, all) = begin()
        mine.bytes = bytes
        try wait("an all-gather")
        guard all.allSatisfy({ $0.bytes.count == bytes.count }) else {
            throw SeqTrainError("collective mismatch: the workers gather \(all.map(\.bytes.count)) bytes; every worker must call the same collectives in the same order")
        }
        guard let inner else { return all.map(\.bytes) }
        if worker == 0 {
            let gathered = try inner.allGather(all.flatMap(\.bytes))
            mine.fromRanks = gathered.flatMap { part in
                (0..<group.size).map { Array(part[($0 * bytes.count)..<(($0 + 1) * bytes.count)]) }
            }
        }
        try wait("an all-gather over the ranks")
        return all[0].fromRanks
    }

    public func barrier() throws {
        _ = begin()
        try wait("a barrier")
        guard let inner else { return }
        if worker == 0 { try inner.barrier() }
        try wait("a barrier over the ranks")
    }

    public func shareWithinProcess(_ buffers: [FloatBuffer]) throws -> [FloatBuffer] {
        let (mine, all) = begin()
        mine.buffers = buffers
        try wait("sharing the parameters")
        let shared = all[0].buffers
        guard shared.count == buffers.count, zip(shared, buffers).allSatisfy({ $0.count == $1.count }) else {
            throw SeqTrainError("the workers' models differ in layout; every worker must build the same model")
        }
        return shared
    }

    public func synchronizeProcess() throws {
        _ = begin()
        try wait("the update of the shared parameters")
    }

    /// Ends the job: every rank through MPI in a hybrid run, else this process.
    public func abort(code: Int32) -> Never {
        group.fail()
        if let inner { inner.abort(code: code) }
        fflush(stdout)
        fflush(stderr)
        _exit(code)
    }
}
