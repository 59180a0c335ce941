import CBLAS
import CKernels
import Foundation

/// The processor, as cpuid and xgetbv describe it.
public struct CPUDescription: Equatable {
    public var vendor: String
    public var brand: String
    public var family: Int
    public var model: Int
    public var avx = false, avx2 = false, fma = false
    /// AVX-512 F, DQ, BW and VL, with the operating system saving ZMM state.
    public var avx512 = false
    public var avx512bf16 = false
    public var amx = false

    public init(vendor: String, brand: String = "", family: Int = 0, model: Int = 0, avx: Bool = false, avx2: Bool = false,
                fma: Bool = false, avx512: Bool = false, avx512bf16: Bool = false, amx: Bool = false) {
        self.vendor = vendor
        self.brand = brand
        self.family = family
        self.model = model
        self.avx = avx
        self.avx2 = avx2
        self.fma = fma
        self.avx512 = avx512
        self.avx512bf16 = avx512bf16
        self.amx = amx
    }

    /// This machine's processor.
    public static let current: CPUDescription = {
        var raw = st_cpu_features()
        guard st_cpu_features(&raw) != 0 else { return CPUDescription(vendor: "unknown (not x86)") }
        func text<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                .trimmingCharacters(in: .whitespaces)
        }
        let osAVX = raw.os_avx != 0
        return CPUDescription(
            vendor: text(raw.vendor), brand: text(raw.brand), family: Int(raw.family), model: Int(raw.model),
            avx: osAVX && raw.avx != 0, avx2: osAVX && raw.avx2 != 0, fma: osAVX && raw.fma != 0,
            avx512: raw.os_avx512 != 0 && raw.avx512f != 0 && raw.avx512dq != 0 && raw.avx512bw != 0 && raw.avx512vl != 0,
            avx512bf16: raw.os_avx512 != 0 && raw.avx512bf16 != 0, amx: raw.amx != 0)
    }()

    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }

    /// "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207: AVX-512, BF16, AMX)".
    public var summary: String {
        var features: [String] = []
        if avx512 { features.append("AVX-512") } else if avx2 && fma { features.append("AVX2+FMA") } else if avx { features.append("AVX") }
        if avx512bf16 { features.append("BF16") }
        if amx { features.append("AMX") }
        let name = brand.isEmpty ? vendor : brand
        return "\(name) (\(vendor) family \(family) model \(model)\(features.isEmpty ? "" : ": " + features.joined(separator: ", ")))"
    }
}

/// Whether OpenBLAS's own kernel choice fits the CPU, and which kernel to ask for when it does not.
///
/// OpenBLAS built with DYNAMIC_ARCH picks a kernel from cpuid when the library loads, and a build
/// older than the CPU falls back to its Prescott (SSE3) kernels: Debian 12's 0.3.21 does so on a
/// current Xeon (family 6 model 207), at a third of the speed its AVX-512 kernels reach there.
/// The kernel can only be chosen before the library loads, through `OPENBLAS_CORETYPE`, so seqtrain
/// re-executes itself with it set (`BLASKernelSelection.applyAtStartup`).
public enum BLASKernelChoice {
    /// A kernel's instruction level: 1 up to SSE4, 2 AVX, 3 AVX2 and FMA, 4 AVX-512.
    public static func level(ofCore name: String) -> Int {
        switch name.lowercased() {
        case "sapphirerapids", "cooperlake", "skylakex": return 4
        case "haswell", "zen", "excavator", "steamroller": return 3
        case "sandybridge", "bulldozer", "piledriver": return 2
        default: return 1  // Prescott, Nehalem, Core2, Katmai, Barcelona, Atom, generic, Unknown ...
        }
    }

    /// OpenBLAS kernels for this CPU, best first; a build may lack the first ones.
    public static func preferredCores(for cpu: CPUDescription) -> [String] {
        var cores: [String] = []
        if cpu.isAMD {
            // AMD's own kernel family, also on AVX-512 Zen 4.
            if cpu.avx2 && cpu.fma { cores.append("Zen") }
        } else if cpu.avx512 {
            if cpu.amx && cpu.avx512bf16 { cores.append("SapphireRapids") }
            if cpu.avx512bf16 { cores.append("Cooperlake") }
            cores.append("SkylakeX")
        }
        if cpu.avx2 && cpu.fma { cores.append("Haswell") }
        if cpu.avx { cores.append("Sandybridge") }
        return cores
    }

    public enum Decision: Equatable {
        /// Leave OpenBLAS's kernel alone, for this reason.
        case keep(reason: String)
        /// Ask for these kernels, best first, each better than the one in use.
        case select([String])
    }

    /// The decision for a CPU and the kernel OpenBLAS chose. `userCoreType` is an `OPENBLAS_CORETYPE`
    /// the user set (respected); `seqtrainSetting` is `SEQTRAIN_BLAS_CORE` (`keep` turns selection off).
    public static func decide(cpu: CPUDescription, currentCore: String, userCoreType: String?, seqtrainSetting: String?) -> Decision {
        if let setting = seqtrainSetting?.lowercased(), setting == "keep" {
            return .keep(reason: "SEQTRAIN_BLAS_CORE=keep")
        }
        if let user = userCoreType, !user.isEmpty {
            return .keep(reason: "OPENBLAS_CORETYPE=\(user) was set")
        }
        let preferred = preferredCores(for: cpu)
        guard let best = preferred.first else { return .keep(reason: "no faster OpenBLAS kernel for this CPU") }
        let current = level(ofCore: currentCore)
        guard current < level(ofCore: best) else { return .keep(reason: "OpenBLAS's choice suits this CPU") }
        return .select(preferred.filter { level(ofCore: $0) > current })
    }
}

/// Denormal floats flushed to zero in the calling thread: gradients that decay through hundreds of
/// recurrent steps otherwise reach the denormal range, where x86 arithmetic is very slow (a step of
/// the 1500-step classifier took three times as long). Values below 1.2e-38 do not change training.
public enum FloatEnvironment {
    public static func flushDenormals() { st_flush_denormals() }
}

/// Applies `BLASKernelChoice` at start-up by re-executing the process, and describes the outcome.
public enum BLASKernelSelection {
    /// Set on a re-executed process: "from=Prescott;candidates=Cooperlake,SkylakeX;attempt=0".
    static let markerVariable = "SEQTRAIN_BLAS_SELECTION"
    /// Test seam: treat `OPENBLAS_CORETYPE` as OpenBLAS's own choice rather than the user's.
    static let testVariable = "SEQTRAIN_BLAS_TEST_AS_DETECTED"

    /// The kernel OpenBLAS runs: "Prescott", "Haswell", "SkylakeX", "Zen" ...
    public static var currentCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name).trimmingCharacters(in: .whitespaces)
    }

    /// "OpenBLAS 0.3.21".
    public static var libraryVersion: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: config).split(separator: " ").prefix(2).joined(separator: " ")
    }

    struct Marker {
        var from: String
        var candidates: [String]
        var attempt: Int

        init(from: String, candidates: [String], attempt: Int) {
            self.from = from
            self.candidates = candidates
            self.attempt = attempt
        }

        init?(_ text: String) {
            var fields: [String: String] = [:]
            for part in text.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { fields[kv[0]] = kv[1] }
            }
            guard let from = fields["from"], let list = fields["candidates"], let attempt = fields["attempt"].flatMap({ Int($0) }),
                  attempt >= 0 else { return nil }
            self.init(from: from, candidates: list.split(separator: ",").map(String.init), attempt: attempt)
        }

        var text: String { "from=\(from);candidates=\(candidates.joined(separator: ","));attempt=\(attempt)" }
    }

    /// Called first thing in `main`, before any BLAS call and before MPI starts: when OpenBLAS fell
    /// back to a kernel far below the CPU, sets `OPENBLAS_CORETYPE` to the best kernel for the CPU and
    /// re-executes this program (same process id, so an MPI launcher sees nothing). A build that lacks
    /// the kernel falls back again; then the next candidate is tried.
    public static func applyAtStartup() {
        let environment = ProcessInfo.processInfo.environment
        let core = currentCore
        var next: Marker
        if let marker = environment[markerVariable].flatMap(Marker.init) {
            // A re-executed process: keep the kernel when it is as good as the one asked for.
            let asked = marker.attempt < marker.candidates.count ? marker.candidates[marker.attempt] : core
            guard BLASKernelChoice.level(ofCore: core) < BLASKernelChoice.level(ofCore: asked),
                  marker.attempt + 1 < marker.candidates.count else { return }
            next = marker
            next.attempt += 1
        } else {
            let user = environment[testVariable] == nil ? environment["OPENBLAS_CORETYPE"] : nil
            let decision = BLASKernelChoice.decide(cpu: .current, currentCore: core, userCoreType: user,
                                                   seqtrainSetting: environment["SEQTRAIN_BLAS_CORE"])
            guard case .select(let candidates) = decision else { return }
            next = Marker(from: core, candidates: candidates, attempt: 0)
        }
        setenv("OPENBLAS_CORETYPE", next.candidates[next.attempt], 1)
        setenv(markerVariable, next.text, 1)
        unsetenv(testVariable)
        var arguments = CommandLine.arguments.map { strdup($0) }
        arguments.append(nil)
        execv("/proc/self/exe", &arguments)
        // execv returns only on failure: run on with the kernel already loaded.
        unsetenv(markerVariable)
    }

    /// Whether seqtrain changed OpenBLAS's choice in this process, and from what.
    public static var selectedFrom: String? {
        ProcessInfo.processInfo.environment[markerVariable].flatMap(Marker.init)?.from
    }

    /// One line for the first line of `train` and `bench`:
    /// "BLAS: OpenBLAS 0.3.21, kernel Cooperlake (selected by seqtrain; OpenBLAS chose Prescott); CPU: ...".
    public static var summary: String {
        let environment = ProcessInfo.processInfo.environment
        let core = currentCore
        var how: String
        if let from = selectedFrom {
            how = from.lowercased() == core.lowercased()
                ? "OpenBLAS's choice; seqtrain asked for a faster one, which this build lacks"
                : "selected by seqtrain; OpenBLAS chose \(from); SEQTRAIN_BLAS_CORE=keep keeps OpenBLAS's choice"
        } else if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            how = "OPENBLAS_CORETYPE=\(user)"
        } else if environment["SEQTRAIN_BLAS_CORE"]?.lowercased() == "keep" {
            how = "OpenBLAS's choice, kept by SEQTRAIN_BLAS_CORE=keep"
        } else {
            how = "OpenBLAS's choice"
        }
        return "BLAS: \(libraryVersion), kernel \(core) (\(how)), \(BLASThreads.current) thread(s); CPU: \(CPUDescription.current.summary)"
    }
}
