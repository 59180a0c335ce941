/// A multi-layer perceptron classifier: Linear → activation → … → Linear to C logits, trained with
/// softmax cross-entropy on the logits. Parameter names are those of PyTorch's `nn.Sequential`
/// (Linear layers at even indices):
///
///     nn.Sequential(nn.Linear(I, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU(), nn.Linear(H2, C))
///
/// Legend: N rows, widths[0] = I, widths.last = C.
public final class MLPClassifier {
    public let linears: [Linear]
    public let activation: Activation
    public let parameters: ParameterArena

    private var activations: [FloatBuffer] = []   // k: input of linear k, (N, widths[k]); last: logits (N, C)
    private var preActivations: [FloatBuffer] = [] // k ≥ 1: output of linear k-1 before the activation
    private let dBuffer = FloatBuffer(), dNext = FloatBuffer()
    private var rows = 0

    public init(widths: [Int], activation: Activation = .relu) {
        var layout = ParameterLayout()
        linears = (0..<(widths.count - 1)).map { k in
            Linear("\(2 * k)", inFeatures: widths[k], outFeatures: widths[k + 1], layout: &layout)
        }
        self.activation = activation
        parameters = ParameterArena(layout)
        activations = (0..<widths.count).map { _ in FloatBuffer() }
        preActivations = (0..<widths.count).map { _ in FloatBuffer() }
    }

    public var classCount: Int { linears.last!.outFeatures }
    public var logits: FloatBuffer { activations.last! }

    /// logits (N, C) ← network(x (N, I)).
    public func forward(_ x: UnsafePointer<Float>, rows n: Int) {
        rows = n
        activations[0].resize(n * linears[0].inFeatures)
        activations[0].pointer.update(from: x, count: n * linears[0].inFeatures)
        for (k, linear) in linears.enumerated() {
            let out = activations[k + 1]
            out.resize(n * linear.outFeatures)
            linear.forward(out.pointer, activations[k].pointer, rows: n, parameters: parameters)
            if k < linears.count - 1 {
                preActivations[k + 1].resize(out.count)
                preActivations[k + 1].pointer.update(from: out.pointer, count: out.count)
                activation.forward(out.pointer, out.pointer, count: out.count)
            }
        }
    }

    /// Cross-entropy against class ids (N); with `gradient`, back-propagates the loss sum.
    public func loss(targets: UnsafePointer<Int32>, loss lossFunction: CrossEntropyLoss, gradient: Bool) throws -> LossTotal {
        let n = rows
        if gradient { dBuffer.resize(n * classCount) }
        let total = try lossFunction.evaluate(gradient ? dBuffer.pointer : nil, logits: logits.pointer, targets: targets,
                                              rows: n, classes: classCount)
        guard gradient else { return total }
        for k in stride(from: linears.count - 1, through: 0, by: -1) {
            let linear = linears[k]
            if k > 0 { dNext.resize(n * linear.inFeatures) }
            linear.backward(k > 0 ? dNext.pointer : nil, dBuffer.pointer, activations[k].pointer, rows: n, parameters: parameters)
            if k > 0 {
                activation.backward(dNext.pointer, dNext.pointer, x: preActivations[k].pointer, y: activations[k].pointer, count: dNext.count)
                dBuffer.resize(dNext.count)
                dBuffer.pointer.update(from: dNext.pointer, count: dNext.count)
            }
        }
        return total
    }
}
