import Foundation

/// A recurrent entry of a layer stack: `nn.LSTM` / `nn.GRU` / `nn.RNN` over step-major (T, B, I),
/// every step's top-layer h out (T, B, H). Steps past a sample's length run on zeros and do not
/// reach its valid steps (the recurrence only looks back).
final class RecurrentLayer: SequenceLayer {
    let spec: LayerSpec
    let network: RecurrentNetwork
    var outputWidth: Int { network.hiddenSize }
    var recurrentNetworks: [RecurrentNetwork] { [network] }
    /// The state carried across batches (a stateful model): read as the initial state of the next
    /// forward and overwritten with its final state; nil starts from zeros.
    var carried: RecurrentState?

    init(_ name: String, _ r: RecurrentSpec, inputWidth: Int, dropoutStream: Int, layout: inout ParameterLayout) {
        spec = .recurrent(r)
        network = RecurrentNetwork(name, cell: r.cell, nonlinearity: r.nonlinearity, inputSize: inputWidth,
                                   hiddenSize: r.hidden, layers: r.layers, dropout: Float(r.dropout),
                                   dropoutStream: dropoutStream, layout: &layout)
    }

    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout: DropoutContext?) {
        network.forward(y, outputLayout: .stepMajor, x, inputLayout: .stepMajor, batch: B, steps: T, initial: carried,
                        final: carried, parameters: p, dropout: dropout)
    }

    /// The same pass leaving the output in the network's own buffer (`network.outputs`, (T, B, H)).
    func forwardInPlace(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, parameters p: ParameterArena,
                        dropout: DropoutContext?) {
        network.forward(nil, x, inputLayout: .stepMajor, batch: B, steps: T, initial: carried, final: carried,
                        parameters: p, dropout: dropout)
    }

    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena) {
        network.backward(dx, inputLayout: .stepMajor, dy, outputLayout: .stepMajor, parameters: p)
    }
}

/// A bidirectional recurrent entry (`bidirectional=True`): at every level both directions read the
/// level's input, the forward one from the first step, the reverse one from each sample's last
/// valid step back to its first (as a packed sequence), and their outputs are concatenated,
/// (T, B, 2H). Level l + 1 reads level l's both halves, through dropout in training. Each direction
/// of each level is a one-layer network named as PyTorch names it (`weight_ih_l1_reverse`), so
/// both run the packed recurrent kernel.
///
/// Legend: B batch, T steps, I_l the input features of level l (I, then 2H), H hidden.
final class BidirectionalRecurrentLayer: SequenceLayer {
    let spec: LayerSpec
    let forwardNetworks: [RecurrentNetwork]
    let reverseNetworks: [RecurrentNetwork]
    let hidden: Int
    let inputWidth: Int
    let dropout: Dropout
    let dropoutStream: Int
    var outputWidth: Int { 2 * hidden }
    var recurrentNetworks: [RecurrentNetwork] { zip(forwardNetworks, reverseNetworks).flatMap { [$0, $1] } }

    private var levelInputs: [UnsafePointer<Float>] = []  // per level: (T, B, I_l), the stack's or a dropped level's
    private var levelOutputs: [FloatBuffer]              // (T, B, 2H) of every level but the top
    private var dropped: [FloatBuffer]                   // (T, B, 2H): level l's input for l > 0 in training
    private var masks: [FloatBuffer]                     // (T, B, 2H): its dropout mask
    private let reversedInput = FloatBuffer()            // (T, B, I_l): the level's input, each sample reversed
    private let forwardOutput = FloatBuffer()            // (T, B, H)
    private let reverseOutput = FloatBuffer()            // (T, B, H): in reversed time
    private let reverseInTime = FloatBuffer()            // (T, B, H): the same in time order
    private let dForward = FloatBuffer()                 // (T, B, H)
    private let dReverse = FloatBuffer()                 // (T, B, H): in reversed time
    private let dReverseInTime = FloatBuffer()           // (T, B, H): the reverse half of dLevel
    private let dLevelInput = FloatBuffer()              // (T, B, I_l) from the forward direction
    private let dReversedInput = FloatBuffer()           // (T, B, I_l) from the reverse direction, reversed time
    private let dLevel = FloatBuffer()                   // (T, B, 2H): gradient of a level's output
    private var lengths: [Int] = []
    private var batch = 0, steps = 0, droppedOut = false

    init(_ name: String, _ r: RecurrentSpec, inputWidth: Int, dropoutStream: Int, layout: inout ParameterLayout) {
        spec = .recurrent(r)
        hidden = r.hidden
        self.inputWidth = inputWidth
        dropout = Dropout(probability: Float(r.dropout))
        self.dropoutStream = dropoutStream
        var forward: [RecurrentNetwork] = [], reverse: [RecurrentNetwork] = []
        for level in 0..<r.layers {
            let width = level == 0 ? inputWidth : 2 * r.hidden
            for suffix in ["", "_reverse"] {
                let network = RecurrentNetwork(name, cell: r.cell, nonlinearity: r.nonlinearity, inputSize: width,
                                               hiddenSize: r.hidden, firstLayerIndex: level, nameSuffix: suffix,
                                               layout: &layout)
                if suffix.isEmpty { forward.append(network) } else { reverse.append(network) }
            }
        }
        forwardNetworks = forward
        reverseNetworks = reverse
        levelOutputs = (0..<r.layers).map { _ in FloatBuffer() }
        dropped = (0..<r.layers).map { _ in FloatBuffer() }
        masks = (0..<r.layers).map { _ in FloatBuffer() }
    }

    func levelWidth(_ level: Int) -> Int { level == 0 ? inputWidth : 2 * hidden }

    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout context: DropoutContext?) {
        batch = B
        steps = T
        self.lengths = lengths
        let H = hidden, levels = forwardNetworks.count
        droppedOut = context != nil && dropout.probability > 0 && levels > 1
        levelInputs = [x]
        forwardOutput.resize(T * B * H)
        reverseOutput.resize(T * B * H)
        reverseInTime.resize(T * B * H)
        for level in 0..<levels {
            let width = levelWidth(level), input = levelInputs[level]
            if level < levels - 1 { levelOutputs[level].resize(T * B * 2 * H) }
            let out = level == levels - 1 ? y : levelOutputs[level].pointer  // (T, B, 2H)
            forwardNetworks[level].forward(forwardOutput.pointer, outputLayout: .stepMajor, input,
                                           inputLayout: .stepMajor, batch: B, steps: T, initial: nil, final: nil,
                                           parameters: p)
            reversedInput.resize(T * B * width)
            reverseValidSteps(reversedInput.pointer, input, lengths: lengths, steps: T, width: width)
            reverseNetworks[level].forward(reverseOutput.pointer, outputLayout: .stepMajor, reversedInput.pointer,
                                           inputLayout: .stepMajor, batch: B, steps: T, initial: nil, final: nil,
                                           parameters: p)
            // out = [forward h_t, reverse h_t], the reverse half back in time order (zeros past the end).
            reverseValidSteps(reverseInTime.pointer, reverseOutput.pointer, lengths: lengths, steps: T, width: H)
            for row in 0..<(T * B) {
                (out + row * 2 * H).update(from: forwardOutput.pointer + row * H, count: H)
                (out + row * 2 * H + H).update(from: reverseInTime.pointer + row * H, count: H)
            }
            guard level < levels - 1 else { break }
            if droppedOut, let context {
                dropped[level].resize(T * B * 2 * H)
                masks[level].resize(T * B * 2 * H)
                dropout.forward(dropped[level].pointer, mask: masks[level].pointer, out, rows: T * B, width: 2 * H,
                                keys: context.keys(layer: dropoutStream * 64 + level + 1, steps: T))
                levelInputs.append(UnsafePointer(dropped[level].pointer))
            } else {
                levelInputs.append(UnsafePointer(out))
            }
        }
    }

    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hidden, rows = T * B
        dForward.resize(rows * H)
        dReverse.resize(rows * H)
        dReverseInTime.resize(rows * H)
        dLevel.resize(rows * 2 * H)
        dLevel.pointer.update(from: dy, count: rows * 2 * H)
        for level in stride(from: forwardNetworks.count - 1, through: 0, by: -1) {
            let width = levelWidth(level), needInput = level > 0 || dx != nil
            for row in 0..<rows {
                (dForward.pointer + row * H).update(from: dLevel.pointer + row * 2 * H, count: H)
                (dReverseInTime.pointer + row * H).update(from: dLevel.pointer + row * 2 * H + H, count: H)
            }
            reverseValidSteps(dReverse.pointer, dReverseInTime.pointer, lengths: lengths, steps: T, width: H)
            dLevelInput.resize(rows * width)
            dReversedInput.resize(rows * width)
            // The reverse direction first: its parameters follow the forward one's in the arena, and
            // each network reports its gradients final from its own offset on.
            reverseNetworks[level].backward(needInput ? dReversedInput.pointer : nil, inputLayout: .stepMajor,
                                            dReverse.pointer, outputLayout: .stepMajor, parameters: p)
            forwardNetworks[level].backward(needInput ? dLevelInput.pointer : nil, inputLayout: .stepMajor,
                                            dForward.pointer, outputLayout: .stepMajor, parameters: p)
            guard needInput else { break }
            // d input = d forward input + the reverse direction's, back in time order.
            let target = level > 0 ? dLevel.pointer : dx!
            reverseValidSteps(target, dReversedInput.pointer, lengths: lengths, steps: T, width: width)
            addInPlace(target, dLevelInput.pointer, count: rows * width)
            if level > 0 && droppedOut {
                dropout.backward(dLevel.pointer, dLevel.pointer, mask: masks[level - 1].pointer, count: rows * width)
            }
        }
    }
}
