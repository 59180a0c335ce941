import CBLAS
import CKernels

/// Matrix products on OpenBLAS's sgemm, row-major: `c = alpha * op(a) * op(b) + beta * c`,
/// with op(a) (m, k), op(b) (k, n), c (m, n); `lda`, `ldb`, `ldc` are row strides in floats.
@inline(__always)
public func gemm(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves c untouched for k == 0 only when beta == 1; make the other cases explicit.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    cblas_sgemm(CblasRowMajor,
                transposeA ? CblasTrans : CblasNoTrans,
                transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// op(B) (K × N) packed once into the column panels of `gemmPacked`: the recurrent weights, which
/// multiply a small block at every time step of a layer (sgemm would repack them at every call).
public final class PackedMatrix {
    private let storage = FloatBuffer()
    public private(set) var depth = 0    // K
    public private(set) var columns = 0  // N

    public init() {}

    /// Packs op(b): b (K, N) with row stride ldb, or with `transposed` b (N, K) and op(b) = bᵀ.
    public func pack(_ b: UnsafePointer<Float>, ldb: Int, transposed: Bool, depth k: Int, columns n: Int) {
        depth = k
        columns = n
        storage.resize(Int(st_packed_size(Int64(k), Int64(n))))
        st_pack_b(storage.pointer, b, Int64(ldb), transposed ? 1 : 0, Int64(k), Int64(n))
    }

    var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer) }
}

/// c (m, N) ← a (m, K) · op(B), or c + a · op(B) with `accumulate`; B packed. Every element is one
/// multiply-add chain over k in order, so a row's result does not depend on the other rows.
@inline(__always)
public func gemmPacked(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: PackedMatrix,
                       m: Int, accumulate: Bool) {
    st_gemm_packed(c, Int64(ldc), a, Int64(lda), b.pointer, Int64(m), Int64(b.columns), Int64(b.depth), accumulate ? 1 : 0)
}

/// OpenBLAS's thread count for the whole process (1 is best for the small matrices of one rank).
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}
