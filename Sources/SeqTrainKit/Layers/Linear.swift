import Foundation

/// `y = x Wᵀ + b`, PyTorch's `nn.Linear`. Legend: N rows, I in-features, O out-features.
/// Parameters: `{name}.weight` (O, I), `{name}.bias` (O); both uniform ±1/√I as PyTorch.
public struct Linear {
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public let inFeatures: Int
    public let outFeatures: Int

    public init(_ name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true, layout: inout ParameterLayout) {
        let bound = 1 / Float(inFeatures).squareRoot()
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = layout.add("\(name).weight", shape: [outFeatures, inFeatures], initialization: .uniform(bound: bound))
        self.bias = bias ? layout.add("\(name).bias", shape: [outFeatures], initialization: .uniform(bound: bound)) : nil
    }

    /// y (N, O) ← x (N, I) Wᵀ + b.
    public func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows n: Int, parameters p: ParameterArena) {
        if let bias { broadcastRows(y, p.value(bias), rowCount: n, width: outFeatures) }
        gemm(y, ldc: outFeatures, x, lda: inFeatures, p.value(weight), ldb: inFeatures, transposeB: true,
             m: n, n: outFeatures, k: inFeatures, beta: bias == nil ? 0 : 1)
    }

    /// dW += dyᵀ x, db += Σ dy; dx (N, I) ← dy W when asked for (overwritten, or added with `accumulate`).
    public func backward(_ dx: UnsafeMutablePointer<Float>?, accumulate: Bool = false,
                         _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, rows n: Int, parameters p: ParameterArena) {
        gemm(p.gradient(weight), ldc: inFeatures, dy, lda: outFeatures, transposeA: true, x, ldb: inFeatures,
             m: outFeatures, n: inFeatures, k: n, beta: 1)
        if let bias { addColumnSums(p.gradient(bias), dy, rowCount: n, width: outFeatures) }
        p.finishGradients(from: weight)
        if let dx {
            gemm(dx, ldc: inFeatures, dy, lda: outFeatures, p.value(weight), ldb: inFeatures,
                 m: n, n: inFeatures, k: outFeatures, beta: accumulate ? 1 : 0)
        }
    }
}

/// A lookup table, PyTorch's `nn.Embedding`: `{name}.weight` (V, E), initialized N(0, 1).
public struct Embedding {
    public let weight: ParameterRef
    public let vocabularySize: Int
    public let width: Int

    public init(_ name: String, vocabularySize: Int, width: Int, layout: inout ParameterLayout) {
        self.vocabularySize = vocabularySize
        self.width = width
        weight = layout.add("\(name).weight", shape: [vocabularySize, width], initialization: .normal(std: 1))
    }

    /// Throws on an id outside 0..<V, naming the position.
    public func validate(_ ids: UnsafeBufferPointer<Int32>) throws {
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= vocabularySize {
            throw SeqTrainError("token id \(id) at position \(i) is outside the vocabulary 0..<\(vocabularySize)")
        }
    }

    /// out (N, E) ← W[ids] for N ids (already validated).
    public func forward(_ out: UnsafeMutablePointer<Float>, _ ids: UnsafePointer<Int32>, count n: Int, parameters p: ParameterArena) {
        let w = p.value(weight)
        for i in 0..<n { (out + i * width).update(from: w + Int(ids[i]) * width, count: width) }
    }

    /// dW[ids[i]] += dOut[i].
    public func backward(_ dOut: UnsafePointer<Float>, _ ids: UnsafePointer<Int32>, count n: Int, parameters p: ParameterArena) {
        let dw = p.gradient(weight)
        for i in 0..<n { addInPlace(dw + Int(ids[i]) * width, dOut + i * width, count: width) }
    }
}
