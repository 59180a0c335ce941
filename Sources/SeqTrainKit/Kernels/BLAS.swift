import CBLAS

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

/// OpenBLAS's thread count for the whole process (1 is best for the small matrices of one rank).
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}
