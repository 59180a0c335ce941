import Foundation
import MPIShim

/// The communicator over Open MPI (through the C shim). Every collective is non-blocking underneath
/// and waited for with a deadline: a collective that waits longer than `timeout` ends the job,
/// and rank 0 names the ranks that never reached the step it was waiting in.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Seconds a collective may wait before the job is ended.
    public var timeout: Double
    /// What the job is doing, for the watchdog's message.
    public var activity = "start-up"
    /// Rank 0: the latest step each rank announced.
    private var reached: [Int]
    private var currentStep = -1
    private static let stepTag: Int32 = 77

    /// True when this process was started by an MPI launcher (mpirun, srun with PMIx, ...).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    public init(timeout: Double = 300) throws {
        try MPICommunicator.check(st_mpi_init(), "MPI_Init")
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(st_mpi_rank(&r), "MPI_Comm_rank")
        try MPICommunicator.check(st_mpi_size(&s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        self.timeout = timeout
        reached = Array(repeating: -1, count: Int(s))
    }

    deinit { finalize() }

    /// Ends this process's part in MPI (once; later calls do nothing). Called when the work is
    /// done, rather than left to deinit: a worker thread that has not yet exited may still hold
    /// a reference when the process ends.
    public func finalize() { _ = st_mpi_finalize() }

    static func check(_ code: Int32, _ what: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        st_mpi_error_string(code, &text, 512)
        throw SeqTrainError("\(what) failed: \(String(cString: text)) (MPI error \(code))")
    }

    /// Announces that this rank has reached `step`, so a stalled collective can name who is missing.
    public func beginStep(_ step: Int) throws {
        currentStep = step
        if rank == 0 { reached[0] = step } else { try MPICommunicator.check(st_mpi_send_note(Int64(step), 0, MPICommunicator.stepTag), "MPI_Send") }
    }

    private func collectNotes() {
        guard rank == 0 else { return }
        for source in 1..<size {
            var arrived: Int32 = 1, value: Int64 = 0
            while arrived != 0 {
                arrived = 0
                guard st_mpi_poll_note(Int32(source), MPICommunicator.stepTag, &arrived, &value) == 0 else { return }
                if arrived != 0 { reached[source] = max(reached[source], Int(value)) }
            }
        }
    }

    /// Waits for `request`, progressing MPI, until `timeout`; then ends the job with a message.
    func wait(_ request: UnsafeMutableRawPointer?, _ what: String) throws {
        guard let request else { return }
        let start = Benchmark.now()
        var spins = 0
        while true {
            var done: Int32 = 0
            try MPICommunicator.check(st_mpi_test(request, &done), what)
            if done != 0 { return }
            spins += 1
            if spins % 256 == 0 {
                collectNotes()
                if Benchmark.now() - start > timeout { stalled(what) }
                if spins > 100_000 { usleep(50) }
            }
        }
    }

    private func stalled(_ what: String) -> Never {
        var message = "rank \(rank): \(what) during \(activity) waited more than \(Int(timeout)) s (training.collective_timeout_s)"
        if rank == 0 {
            collectNotes()
            let missing = (0..<size).filter { reached[$0] < currentStep }
            message += missing.isEmpty ? "; every rank reached step \(currentStep), so one is stuck inside it"
                : "; ranks that did not reach step \(currentStep): \(missing.map(String.init).joined(separator: ", "))"
        }
        writeStandardError(message + "; ending the job\n")
        st_mpi_abort(4)
        exit(4)
    }

    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        var pending = try startAllReduceSum(values, count: count)
        try pending.wait()
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { buffer in
            var request: UnsafeMutableRawPointer?
            try MPICommunicator.check(st_mpi_iallreduce_sum_double(buffer.baseAddress, Int64(n), &request), "MPI_Iallreduce")
            try wait(request, "sum of loss totals")
        }
    }

    public func startAllReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction {
        var request: UnsafeMutableRawPointer?
        try MPICommunicator.check(st_mpi_iallreduce_sum_float(values, Int64(count), &request), "MPI_Iallreduce")
        return Pending(communicator: self, request: request)
    }

    struct Pending: PendingReduction {
        let communicator: MPICommunicator
        var request: UnsafeMutableRawPointer?

        mutating func test() throws -> Bool {
            guard let r = request else { return true }
            var done: Int32 = 0
            try MPICommunicator.check(st_mpi_test(r, &done), "MPI_Test")
            if done != 0 { request = nil }
            return done != 0
        }

        mutating func wait() throws {
            try communicator.wait(request, "gradient all-reduce")
            request = nil
        }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        // The length first, so other ranks need not know it.
        var length = [rank == root ? Double(bytes.count) : 0]
        try allReduceSum(&length)
        let n = Int(length[0])
        if rank != root { bytes = [UInt8](repeating: 0, count: n) }
        try bytes.withUnsafeMutableBytes { raw in
            var request: UnsafeMutableRawPointer?
            try MPICommunicator.check(st_mpi_ibroadcast_bytes(raw.baseAddress, Int64(n), Int32(root), &request), "MPI_Ibcast")
            try wait(request, "broadcast")
        }
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var gathered = [UInt8](repeating: 0, count: bytes.count * size)
        try bytes.withUnsafeBytes { mine in
            try gathered.withUnsafeMutableBytes { all in
                var request: UnsafeMutableRawPointer?
                try MPICommunicator.check(st_mpi_iallgather_bytes(mine.baseAddress, Int64(bytes.count), all.baseAddress, &request), "MPI_Iallgather")
                try wait(request, "all-gather")
            }
        }
        return (0..<size).map { Array(gathered[($0 * bytes.count)..<(($0 + 1) * bytes.count)]) }
    }

    public func barrier() throws { try MPICommunicator.check(st_mpi_barrier(), "MPI_Barrier") }

    public func abort(code: Int32) -> Never {
        st_mpi_abort(code)
        exit(code)
    }
}
