/// A multi-layer perceptron classifier: Linear → activation → dropout → … → Linear to C logits. The
/// loss is the experiment's; the model takes the gradient of the logits.
/// Parameter names are those of PyTorch's `nn.Sequential`, the Linear layers every `layerStride`
/// modules: 2 for (Linear, ReLU), 3 for (Linear, ReLU, Dropout), which the mlp_classifier kind uses:
///
///     nn.Sequential(nn.Linear(I, H1), nn.ReLU(), nn.Dropout(p), nn.Linear(H1, C))
///
/// Legend: N rows, widths[0] = I, widths.last = C.
public final class MLPClassifier: TrainableModel {
    public let linears: [Linear]
    public let activation: Activation
    public let dropout: Dropout
    public let parameters: ParameterArena
    public var recurrentStacks: [RecurrentNetwork] { [] }
    public var output: FloatBuffer { logits }
    /// activations[k] is the input of linear k: its output is activations[k + 1] (the last: logits).
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        activations.enumerated().dropFirst().map { ("linear \($0.offset - 1) output" + ($0.offset == activations.count - 1 ? " (logits)" : ""), $0.element) }
    }

    private var activations: [FloatBuffer] = []   // k: input of linear k, (N, widths[k]); last: logits (N, C)
    private var preActivations: [FloatBuffer] = [] // k ≥ 1: output of linear k-1 before the activation
    private var masks: [FloatBuffer] = []          // k ≥ 1: dropout mask on input k, (N, widths[k])
    private var droppedOut = false
    private let dBuffer = FloatBuffer(), dNext = FloatBuffer()
    public private(set) var rows = 0

    public init(widths: [Int], activation: Activation = .relu, dropout: Float = 0, layerStride: Int = 2) {
        var layout = ParameterLayout()
        linears = (0..<(widths.count - 1)).map { k in
            Linear("\(layerStride * k)", inFeatures: widths[k], outFeatures: widths[k + 1], layout: &layout)
        }
        self.activation = activation
        self.dropout = Dropout(probability: dropout)
        parameters = ParameterArena(layout)
        activations = (0..<widths.count).map { _ in FloatBuffer() }
        preActivations = (0..<widths.count).map { _ in FloatBuffer() }
        masks = (0..<widths.count).map { _ in FloatBuffer() }
    }

    public var classCount: Int { linears.last!.outFeatures }
    public var logits: FloatBuffer { activations.last! }

    /// logits (N, C) ← network(x (N, I)). `dropout` nil means inference.
    public func forward(_ x: UnsafePointer<Float>, rows n: Int, dropout context: DropoutContext? = nil) {
        rows = n
        droppedOut = context != nil && dropout.probability > 0
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
                if droppedOut, let context {
                    masks[k + 1].resize(out.count)
                    dropout.forward(out.pointer, mask: masks[k + 1].pointer, out.pointer, rows: n, width: linear.outFeatures,
                                    keys: context.keys(layer: k, steps: 1))
                }
            }
        }
    }

    /// Back-propagates dLogits (N, C) (the gradient of the loss sum), adding every weight gradient.
    public func backward(_ dLogits: UnsafePointer<Float>) {
        let n = rows
        dBuffer.resize(n * classCount)
        dBuffer.pointer.update(from: dLogits, count: n * classCount)
        for k in stride(from: linears.count - 1, through: 0, by: -1) {
            let linear = linears[k]
            if k > 0 { dNext.resize(n * linear.inFeatures) }
            linear.backward(k > 0 ? dNext.pointer : nil, dBuffer.pointer, activations[k].pointer, rows: n, parameters: parameters)
            if k > 0 {
                if droppedOut { dropout.backward(dNext.pointer, dNext.pointer, mask: masks[k].pointer, count: dNext.count) }
                // The activation's output before dropout: y = x_dropped / mask is not recoverable, so
                // recompute f(pre-activation) for the derivatives that use y.
                activation.backward(dNext.pointer, dNext.pointer, x: preActivations[k].pointer,
                                    y: droppedOut ? activated(k) : UnsafePointer(activations[k].pointer), count: dNext.count)
                dBuffer.resize(dNext.count)
                dBuffer.pointer.update(from: dNext.pointer, count: dNext.count)
            }
        }
    }

    private let scratch = FloatBuffer()

    /// f(pre-activation k), the activation's output before dropout.
    private func activated(_ k: Int) -> UnsafePointer<Float> {
        scratch.resize(preActivations[k].count)
        activation.forward(scratch.pointer, preActivations[k].pointer, count: scratch.count)
        return UnsafePointer(scratch.pointer)
    }
}
