import CKernels
import Foundation

/// The CPUs a process may use: its affinity mask, its cgroup's CPU quota, and how many ranks of
/// the job share the node (an MPI launcher that does not bind leaves every rank the whole mask).
public struct CPUBudget: Equatable {
    public var affinity: Int
    public var online: Int
    /// cpu.max (cgroup v2) or cfs_quota / cfs_period (v1) in CPUs; nil when unlimited.
    public var quota: Double?
    public var ranksOnNode: Int

    public init(affinity: Int, online: Int, quota: Double?, ranksOnNode: Int) {
        self.affinity = affinity
        self.online = online
        self.quota = quota
        self.ranksOnNode = ranksOnNode
    }

    /// CPUs this process should use.
    public var usable: Int {
        var n = max(1, affinity)
        if let quota, quota > 0 { n = min(n, max(1, Int(quota.rounded(.up)))) }
        // Ranks bound to their cores see only those; ranks left unbound share the node's.
        if affinity >= online && ranksOnNode > 1 { n = max(1, n / ranksOnNode) }
        return n
    }

    /// Read off this process and its environment.
    public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> CPUBudget {
        let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let affinity = Int(st_affinity_cpu_count())
        return CPUBudget(affinity: affinity > 0 ? affinity : online, online: online, quota: cgroupQuota(),
                         ranksOnNode: ranksOnNode(environment))
    }

    /// Ranks of this job on this node, from the launcher's environment (Open MPI, PMIx, Slurm).
    static func ranksOnNode(_ environment: [String: String]) -> Int {
        for key in ["OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE", "MPI_LOCALNRANKS"] {
            if let n = environment[key].flatMap({ Int($0) }), n > 0 { return n }
        }
        // Slurm: SLURM_NTASKS_PER_NODE, or the first entry of SLURM_TASKS_PER_NODE ("2(x3),1").
        if let n = environment["SLURM_NTASKS_PER_NODE"].flatMap({ Int($0) }), n > 0 { return n }
        if let first = environment["SLURM_TASKS_PER_NODE"]?.split(separator: ",").first,
           let n = Int(first.prefix { $0.isNumber }), n > 0, environment["SLURM_STEP_ID"] != nil { return n }
        return 1
    }

    /// The tightest CPU quota of this process's cgroup and its ancestors, in CPUs.
    static func cgroupQuota() -> Double? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var quotas: [Double] = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            var path = fields[2]
            if fields[1].isEmpty {
                // cgroup v2: "max 100000" or "200000 100000" in cpu.max.
                while true {
                    if let text = try? String(contentsOfFile: "/sys/fs/cgroup\(path == "/" ? "" : path)/cpu.max", encoding: .utf8) {
                        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
                        if parts.count == 2, let limit = Double(parts[0]), let period = Double(parts[1]), period > 0 { quotas.append(limit / period) }
                    }
                    guard path != "/", let slash = path.lastIndex(of: "/") else { break }
                    path = slash == path.startIndex ? "/" : String(path[..<slash])
                }
            } else if fields[1].split(separator: ",").contains("cpu") {
                for root in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
                    guard let q = try? String(contentsOfFile: "\(root)\(path)/cpu.cfs_quota_us", encoding: .utf8),
                          let p = try? String(contentsOfFile: "\(root)\(path)/cpu.cfs_period_us", encoding: .utf8),
                          let limit = Double(q.trimmingCharacters(in: .whitespacesAndNewlines)),
                          let period = Double(p.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0, period > 0 else { continue }
                    quotas.append(limit / period)
                }
            }
        }
        return quotas.min()
    }
}

/// How many worker threads a process runs (`training.workers`) and how many BLAS threads each
/// worker's matrix products use, with the reason for the first line of the run.
public struct WorkerPlan: Equatable {
    public var workers: Int
    public var blasThreads: Int
    public var note: String

    /// BLAS threads per worker: OpenBLAS's own variables in its order, else 1 (one thread is best
    /// for the small matrices of a replica; workers, not BLAS threads, use the other cores).
    public static func blasThreads(_ environment: [String: String]) -> Int? {
        for key in ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let n = environment[key].flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }), n > 0 { return n }
        }
        return nil
    }

    /// - requested: `training.workers` ("auto" or a count); nil when the config could not be read
    ///   (the trainer reports why; one worker meanwhile).
    /// - batchSize: `training.batch_size`, shared out over ranks × workers.
    public static func resolve(requested: ConfigValue?, batchSize: Int?, ranks: Int, budget: CPUBudget,
                               environment: [String: String]) -> WorkerPlan {
        let blas = blasThreads(environment) ?? 1
        switch requested {
        case .integer(let n)?:
            return WorkerPlan(workers: n, blasThreads: blas, note: "training.workers = \(n)")
        case .text("auto")?:
            let usable = budget.usable
            let cap = max(1, usable / blas)
            var workers = cap
            var note = "training.workers = \"auto\": \(usable) usable CPU\(usable == 1 ? "" : "s")"
            if blas > 1 { note += " at \(blas) BLAS threads per worker" }
            if let batchSize, ranks > 0, batchSize % ranks == 0 {
                let share = batchSize / ranks
                workers = (1...cap).last { share % $0 == 0 } ?? 1
                if workers < cap { note += "; \(workers), the most that divide the batch share of \(share)" }
            } else {
                workers = 1
            }
            return WorkerPlan(workers: workers, blasThreads: blas, note: note)
        default:
            return WorkerPlan(workers: 1, blasThreads: blas, note: "one worker until the config is read")
        }
    }
}
