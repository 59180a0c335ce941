import CKernels
import XCTest
import SeqTrainKit

/// The recurrent layers' products against a packed matrix, on every instruction set this CPU can
/// run (plain C, AVX2 + FMA, AVX-512), against OpenBLAS's sgemm: shapes that fill no panel or no
/// block of rows exactly, B given as is or transposed, C overwritten or accumulated.
final class PackedGemmTests: XCTestCase {
    func testPackedProductsEqualSgemmOnEveryInstructionSet() throws {
        let random = CounterRandom(seed: 3, purpose: .synthetic)
        func values(_ n: Int, stream: UInt64) -> [Float] { (0..<n).map { random.uniform(stream: stream, index: UInt64($0)) * 2 - 1 } }
        let shapes: [(m: Int, n: Int, k: Int)] = [(1, 1, 1), (16, 1024, 256), (25, 512, 128), (7, 30, 10), (9, 33, 17), (13, 100, 300), (50, 48, 5)]
        var tested: [Int32] = []
        // The instruction set chosen at load time, put back at the end.
        let chosen = st_packed_gemm_force(0)
        defer { _ = st_packed_gemm_force(chosen) }
        for isa: Int32 in [0, 1, 2] {
            guard st_packed_gemm_force(isa) >= 0 else {
                print("packed GEMM: this CPU cannot run instruction set \(isa); skipped")
                continue
            }
            tested.append(isa)
            for (index, shape) in shapes.enumerated() {
                let (m, n, k) = shape
                let a = values(m * k, stream: UInt64(index * 3))
                let b = values(k * n, stream: UInt64(index * 3 + 1))        // (K, N)
                let bt = (0..<(n * k)).map { b[($0 % k) * n + $0 / k] }  // (N, K) = bᵀ
                let c0 = values(m * n, stream: UInt64(index * 3 + 2))
                for transposed in [false, true] {
                    let packed = PackedMatrix()
                    (transposed ? bt : b).withUnsafeBufferPointer { packed.pack($0.baseAddress!, ldb: transposed ? k : n, transposed: transposed, depth: k, columns: n) }
                    for accumulate in [false, true] {
                        var expected = c0, got = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in expected.withUnsafeMutableBufferPointer { pc in
                            gemm(pc.baseAddress!, ldc: n, pa.baseAddress!, lda: k, pb.baseAddress!, ldb: n, m: m, n: n, k: k, beta: accumulate ? 1 : 0)
                        } } }
                        a.withUnsafeBufferPointer { pa in got.withUnsafeMutableBufferPointer { pc in
                            gemmPacked(pc.baseAddress!, ldc: n, pa.baseAddress!, lda: k, packed, m: m, accumulate: accumulate)
                        } }
                        assertClose(got, expected, "isa \(isa), \(m)×\(k)·\(k)×\(n), transposed \(transposed), accumulate \(accumulate)",
                                    absolute: 2e-5 * Float(k).squareRoot(), relative: 1e-5)
                    }
                }
            }
        }
        XCTAssertTrue(tested.contains(0), "the plain C kernels run everywhere")
        // A row's result does not depend on the other rows of the call: the property that keeps
        // the workers' and ranks' shares of a batch exact.
        _ = st_packed_gemm_force(tested.last!)
        let (m, n, k) = (11, 64, 40)
        let a = values(m * k, stream: 99), b = values(k * n, stream: 98)
        let packed = PackedMatrix()
        b.withUnsafeBufferPointer { packed.pack($0.baseAddress!, ldb: n, transposed: false, depth: k, columns: n) }
        var whole = [Float](repeating: 0, count: m * n), row = [Float](repeating: 0, count: n)
        a.withUnsafeBufferPointer { pa in whole.withUnsafeMutableBufferPointer { gemmPacked($0.baseAddress!, ldc: n, pa.baseAddress!, lda: k, packed, m: m, accumulate: false) } }
        for r in 0..<m {
            a.withUnsafeBufferPointer { pa in row.withUnsafeMutableBufferPointer { gemmPacked($0.baseAddress!, ldc: n, pa.baseAddress! + r * k, lda: k, packed, m: 1, accumulate: false) } }
            XCTAssertEqual(row, Array(whole[(r * n)..<((r + 1) * n)]), "row \(r) alone")
        }
    }
}
