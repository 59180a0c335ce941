import Foundation
import XCTest
import SeqTrainKit

/// The choice of OpenBLAS kernel: a pure decision from the CPU and OpenBLAS's own choice, and the
/// binary re-executing itself with a better kernel.
final class BLASKernelTests: XCTestCase {
    static let xeon = CPUDescription(vendor: "GenuineIntel", family: 6, model: 207, avx: true, avx2: true, fma: true,
                                     avx512: true, avx512bf16: true, amx: true)
    static let skylakeServer = CPUDescription(vendor: "GenuineIntel", family: 6, model: 85, avx: true, avx2: true, fma: true, avx512: true)
    static let zen4 = CPUDescription(vendor: "AuthenticAMD", family: 25, model: 17, avx: true, avx2: true, fma: true, avx512: true, avx512bf16: true)
    static let haswellDesktop = CPUDescription(vendor: "GenuineIntel", family: 6, model: 60, avx: true, avx2: true, fma: true)
    static let sandyBridge = CPUDescription(vendor: "GenuineIntel", family: 6, model: 42, avx: true)
    static let oldAtom = CPUDescription(vendor: "GenuineIntel", family: 6, model: 28)

    func testDecisionTable() {
        typealias Case = (cpu: CPUDescription, core: String, user: String?, setting: String?, expected: BLASKernelChoice.Decision)
        let cases: [Case] = [
            // OpenBLAS 0.3.21 falls back to Prescott on a current Xeon: ask for its AVX-512 kernels.
            (Self.xeon, "Prescott", nil, nil, .select(["SapphireRapids", "Cooperlake", "SkylakeX", "Haswell", "Sandybridge"])),
            (Self.xeon, "Nehalem", nil, nil, .select(["SapphireRapids", "Cooperlake", "SkylakeX", "Haswell", "Sandybridge"])),
            (Self.xeon, "Haswell", nil, nil, .select(["SapphireRapids", "Cooperlake", "SkylakeX"])),
            (Self.xeon, "Cooperlake", nil, nil, .keep(reason: "OpenBLAS's choice suits this CPU")),
            (Self.xeon, "SkylakeX", nil, nil, .keep(reason: "OpenBLAS's choice suits this CPU")),
            (Self.skylakeServer, "Core2", nil, nil, .select(["SkylakeX", "Haswell", "Sandybridge"])),
            (Self.skylakeServer, "generic", nil, nil, .select(["SkylakeX", "Haswell", "Sandybridge"])),
            // AMD: Zen is the right family, AVX-512 or not.
            (Self.zen4, "Zen", nil, nil, .keep(reason: "OpenBLAS's choice suits this CPU")),
            (Self.zen4, "Prescott", nil, nil, .select(["Zen", "Haswell", "Sandybridge"])),
            (Self.haswellDesktop, "Katmai", nil, nil, .select(["Haswell", "Sandybridge"])),
            (Self.haswellDesktop, "Haswell", nil, nil, .keep(reason: "OpenBLAS's choice suits this CPU")),
            (Self.sandyBridge, "Prescott", nil, nil, .select(["Sandybridge"])),
            (Self.oldAtom, "Atom", nil, nil, .keep(reason: "no faster OpenBLAS kernel for this CPU")),
            // The user decides when they said something.
            (Self.xeon, "Prescott", "Prescott", nil, .keep(reason: "OPENBLAS_CORETYPE=Prescott was set")),
            (Self.xeon, "Prescott", nil, "keep", .keep(reason: "SEQTRAIN_BLAS_CORE=keep")),
            (Self.xeon, "Prescott", "Haswell", "keep", .keep(reason: "SEQTRAIN_BLAS_CORE=keep")),
        ]
        for c in cases {
            XCTAssertEqual(BLASKernelChoice.decide(cpu: c.cpu, currentCore: c.core, userCoreType: c.user, seqtrainSetting: c.setting),
                           c.expected, "\(c.cpu.summary) with \(c.core)")
        }
    }

    /// cpuid as seqtrain decodes it agrees with the kernel's view in /proc/cpuinfo.
    func testCPUDescriptionAgreesWithProcCpuinfo() throws {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no /proc/cpuinfo flags line on this system")
        }
        let flags = Set(flagsLine.split(separator: ":").last!.split(separator: " ").map(String.init))
        let cpu = CPUDescription.current
        XCTAssertEqual(cpu.avx, flags.contains("avx"), "avx")
        XCTAssertEqual(cpu.avx2, flags.contains("avx2"), "avx2")
        XCTAssertEqual(cpu.fma, flags.contains("fma"), "fma")
        XCTAssertEqual(cpu.avx512, ["avx512f", "avx512dq", "avx512bw", "avx512vl"].allSatisfy(flags.contains), "avx512")
        XCTAssertEqual(cpu.avx512bf16, flags.contains("avx512_bf16"), "avx512_bf16")
        XCTAssertEqual(cpu.amx, flags.contains("amx_tile"), "amx_tile")
        if let vendor = text.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") })?.split(separator: ":").last {
            XCTAssertEqual(cpu.vendor, vendor.trimmingCharacters(in: .whitespaces))
        }
    }

    /// The binary, started with OpenBLAS on its Prescott kernel, re-executes itself with a better one.
    func testBinaryReplacesAPrescottFallback() throws {
        let cpu = CPUDescription.current
        guard case .select(let candidates) = BLASKernelChoice.decide(cpu: cpu, currentCore: "Prescott", userCoreType: nil, seqtrainSetting: nil) else {
            throw XCTSkip("this CPU (\(cpu.summary)) has no kernel better than Prescott to select")
        }
        let forced = ["OPENBLAS_CORETYPE": "Prescott", "SEQTRAIN_BLAS_TEST_AS_DETECTED": "1"]
        let selected = try MultiRankTests.execute([MultiRankTests.binary, "system"], environment: forced)
        XCTAssertEqual(selected.status, 0, selected.errors)
        XCTAssertTrue(selected.output.contains("selected by seqtrain; OpenBLAS chose Prescott"), selected.output)
        let core = try MultiRankTests.execute([MultiRankTests.binary, "system", "--core"], environment: forced)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertGreaterThan(BLASKernelChoice.level(ofCore: core), 1, "still on \(core); candidates were \(candidates)")

        // SEQTRAIN_BLAS_CORE=keep leaves it alone, and so does a user's own OPENBLAS_CORETYPE.
        let kept = try MultiRankTests.execute([MultiRankTests.binary, "system", "--core"],
                                              environment: forced.merging(["SEQTRAIN_BLAS_CORE": "keep"]) { $1 })
        XCTAssertEqual(kept.output.trimmingCharacters(in: .whitespacesAndNewlines), "Prescott")
        let user = try MultiRankTests.execute([MultiRankTests.binary, "system"], environment: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertTrue(user.output.contains("kernel Prescott (OPENBLAS_CORETYPE=Prescott)"), user.output)
    }
}
