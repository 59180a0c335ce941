import Foundation

/// `nn.Conv1d` over the steps of step-major sequences, then an activation, forward and backward side
/// by side. Channels are last inside ((T, B, C) as every layer of a stack); the weight keeps
/// PyTorch's (out, in, k) layout, so a checkpoint loads into `nn.Conv1d(in, out, k, stride, dilation=d)`
/// (with the padding of `ConvolutionPadding`). One im2col product does all the steps:
///
///     cols[t′·B + b, c·k + j] = x[t′·stride − left + j·d, b, c]   (zero outside 0..<T)
///     y = f(cols Wᵀ + b)                                           W viewed as (out, in·k)
///
/// Legend: B batch, T input steps, T′ output steps, C in-channels, O filters, k kernel size, d dilation.
/// Parameters: `{name}.weight` (O, C, k), `{name}.bias` (O), uniform ±1/√(C·k) as PyTorch.
final class Convolution1DLayer: SequenceLayer {
    let spec: LayerSpec
    let settings: ConvolutionSpec
    let weight: ParameterRef
    let bias: ParameterRef
    let inputWidth: Int
    var outputWidth: Int { settings.filters }
    var recurrentNetworks: [RecurrentNetwork] { [] }

    private let columns = FloatBuffer()         // (T′·B, C·k)
    private let preActivation = FloatBuffer()   // (T′·B, O)
    private let dPre = FloatBuffer()            // (T′·B, O)
    private let dColumns = FloatBuffer()        // (T′·B, C·k)
    private var y: UnsafePointer<Float>?        // (T′, B, O): the last forward's output
    private var batch = 0, steps = 0, outSteps = 0

    init(_ name: String, _ c: ConvolutionSpec, inputWidth: Int, layout: inout ParameterLayout) {
        spec = .conv1d(c)
        settings = c
        self.inputWidth = inputWidth
        let bound = Initialization.uniform(bound: 1 / Float(inputWidth * c.kernelSize).squareRoot())
        weight = layout.add("\(name).weight", shape: [c.filters, inputWidth, c.kernelSize], initialization: bound)
        bias = layout.add("\(name).bias", shape: [c.filters], initialization: bound)
    }

    /// The input step output t′ reads at kernel tap j (outside 0..<T: padding).
    @inline(__always) func source(_ t: Int, tap j: Int) -> Int {
        t * settings.stride - settings.leftPadding + j * settings.dilation
    }

    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout: DropoutContext?) {
        batch = B
        steps = T
        outSteps = max(settings.outputSteps(T), 1)
        self.y = UnsafePointer(y)
        let C = inputWidth, k = settings.kernelSize, O = settings.filters, rows = outSteps * B
        columns.resize(rows * C * k)
        for t in 0..<outSteps {
            for j in 0..<k {
                let s = source(t, tap: j)
                for b in 0..<B {
                    let column = columns.pointer + (t * B + b) * C * k + j
                    if s >= 0 && s < T {
                        let row = x + (s * B + b) * C
                        for c in 0..<C { column[c * k] = row[c] }
                    } else {
                        for c in 0..<C { column[c * k] = 0 }
                    }
                }
            }
        }
        preActivation.resize(rows * O)
        broadcastRows(preActivation.pointer, p.value(bias), rowCount: rows, width: O)
        gemm(preActivation.pointer, ldc: O, columns.pointer, lda: C * k, p.value(weight), ldb: C * k, transposeB: true,
             m: rows, n: O, k: C * k, beta: 1)
        settings.activation.forward(y, preActivation.pointer, count: rows * O)
    }

    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena) {
        guard let y else { return }
        let B = batch, C = inputWidth, k = settings.kernelSize, O = settings.filters, rows = outSteps * B
        dPre.resize(rows * O)
        settings.activation.backward(dPre.pointer, dy, x: preActivation.pointer, y: y, count: rows * O)
        // dW (O, C·k) += dPreᵀ cols, db += Σ dPre.
        gemm(p.gradient(weight), ldc: C * k, dPre.pointer, lda: O, transposeA: true, columns.pointer, ldb: C * k,
             m: O, n: C * k, k: rows, beta: 1)
        addColumnSums(p.gradient(bias), dPre.pointer, rowCount: rows, width: O)
        guard let dx else { return }
        // dcols = dPre W, then every column scattered back onto the input step it was read from.
        dColumns.resize(rows * C * k)
        gemm(dColumns.pointer, ldc: C * k, dPre.pointer, lda: O, p.value(weight), ldb: C * k,
             m: rows, n: C * k, k: O)
        dx.update(repeating: 0, count: steps * B * C)
        for t in 0..<outSteps {
            for j in 0..<k {
                let s = source(t, tap: j)
                guard s >= 0 && s < steps else { continue }
                for b in 0..<B {
                    let column = dColumns.pointer + (t * B + b) * C * k + j
                    let row = dx + (s * B + b) * C
                    for c in 0..<C { row[c] += column[c * k] }
                }
            }
        }
    }
}
