/// What a sequence autoencoder's decoder reads at each step.
public enum DecoderInput: String, CaseIterable {
    /// The latent vector at every step (Keras's RepeatVector); the decoder starts from a zero state.
    case repeatLatent = "repeat"
    /// Its own previous output (zeros at the first step), the state starting from the latent
    /// (h0 = tanh(to_state(z))). The fed output is a constant to back-propagation, as a sampled
    /// token is in a sequence generator.
    case previousOutput = "previous_output"
}

/// Sequence autoencoder: an encoder LSTM or GRU over each sample's valid steps → its last valid
/// top-layer state → Linear to the latent → a decoder LSTM or GRU (fed the latent at every step,
/// or its own previous output) → a per-step Linear back to the features (Keras's
/// TimeDistributed(Dense)). The loss over the valid steps is the experiment's; this model takes
/// the gradient of the reconstruction. The PyTorch module with the same state_dict:
///
///     class Autoencoder(nn.Module):
///         def __init__(s, F, H, Z, L=1, dropout=0.0, decoder_input="repeat"):   # nn.GRU for cell = "gru"
///             super().__init__()
///             s.encoder = nn.LSTM(F, H, L, batch_first=True, dropout=dropout)
///             s.to_latent = nn.Linear(H, Z)
///             if decoder_input == "previous_output": s.to_state = nn.Linear(Z, L * H)
///             s.decoder = nn.LSTM(Z if decoder_input == "repeat" else F, H, L, batch_first=True, dropout=dropout)
///             s.head = nn.Linear(H, F); s.mode, s.L, s.H = decoder_input, L, H
///         def encode(s, x, lengths):                         # x (B, T, F), lengths (B,)
///             out, _ = s.encoder(x)
///             return s.to_latent(out[torch.arange(len(x)), lengths - 1])
///         def forward(s, x, lengths):
///             z = s.encode(x, lengths)
///             if s.mode == "repeat":
///                 out, _ = s.decoder(z[:, None, :].expand(-1, x.shape[1], -1))
///                 return s.head(out), z
///             h = torch.tanh(s.to_state(z)).view(len(x), s.L, s.H).transpose(0, 1).contiguous()
///             state = (h, torch.zeros_like(h))               # GRU: state = h
///             y, outputs = torch.zeros_like(x[:, 0]), []
///             for t in range(x.shape[1]):
///                 out, state = s.decoder(y[:, None, :].detach(), state)
///                 y = s.head(out[:, 0]); outputs.append(y)
///             return torch.stack(outputs, 1), z
///
/// Legend: B batch, T steps, F features, H hidden, Z latent, L layers. Buffers are step-major (T, B, ·).
public final class SequenceAutoencoder: TrainableModel {
    public let encoder: RecurrentNetwork
    public let toLatent: Linear
    public let toState: Linear?
    public let decoder: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena
    public let decoderInput: DecoderInput
    public var recurrentStacks: [RecurrentNetwork] { [encoder, decoder] }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        encoder.layerOutputs + [("latent", latent)] + decoder.layerOutputs + [("head output (reconstruction)", reconstruction)]
    }

    public let latent = FloatBuffer()          // (B, Z)
    public let reconstruction = FloatBuffer()  // (T, B, F)
    private let encoded = FloatBuffer()        // (B, H): the encoder's top layer at each sample's last valid step
    private let decoderInputs = FloatBuffer()  // (T, B, Z): the latent repeated
    private let initialState = FloatBuffer()   // (B, L·H): tanh(to_state(z)) (previous_output)
    private let target = FloatBuffer()         // (T, B, F): the input, step-major
    private let dReconstruction = FloatBuffer(), dDecoded = FloatBuffer(), dInputs = FloatBuffer()  // (T, B, F), (T, B, H), (T, B, Z)
    private let dLatent = FloatBuffer(), dEncoded = FloatBuffer(), dEncoderOutputs = FloatBuffer(), dState = FloatBuffer()
    private var lengths: [Int] = []
    private var batch = 0, steps = 0

    public init(cell: RecurrentCell = .lstm, features: Int, hiddenSize: Int, latentSize: Int, layers: Int = 1, dropout: Float = 0,
                decoderInput: DecoderInput = .repeatLatent) {
        var layout = ParameterLayout()
        encoder = RecurrentNetwork("encoder", cell: cell, inputSize: features, hiddenSize: hiddenSize, layers: layers,
                                   dropout: dropout, dropoutStream: 1, layout: &layout)
        toLatent = Linear("to_latent", inFeatures: hiddenSize, outFeatures: latentSize, layout: &layout)
        toState = decoderInput == .previousOutput
            ? Linear("to_state", inFeatures: latentSize, outFeatures: layers * hiddenSize, layout: &layout) : nil
        decoder = RecurrentNetwork("decoder", cell: cell, inputSize: decoderInput == .repeatLatent ? latentSize : features,
                                   hiddenSize: hiddenSize, layers: layers, dropout: dropout, dropoutStream: 2, layout: &layout)
        head = Linear("head", inFeatures: hiddenSize, outFeatures: features, layout: &layout)
        parameters = ParameterArena(layout)
        self.decoderInput = decoderInput
    }

    public var features: Int { head.outFeatures }
    public var latentSize: Int { toLatent.outFeatures }

    /// latent (B, Z) ← the encoding of x (B, T, F) over each sample's `lengths` (nil: all T steps).
    public func encode(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths given: [Int]? = nil, dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        lengths = (given ?? [Int](repeating: T, count: B)).map { min(max($0, 1), T) }
        let H = encoder.hiddenSize
        encoder.forward(nil, x, batch: B, steps: T, initial: nil, final: nil, parameters: parameters, dropout: dropout)
        encoded.resize(B * H)
        for b in 0..<B { (encoded.pointer + b * H).update(from: encoder.outputs + ((lengths[b] - 1) * B + b) * H, count: H) }
        latent.resize(B * latentSize)
        toLatent.forward(latent.pointer, encoded.pointer, rows: B, parameters: parameters)
    }

    /// What the decoder was fed at every step of the last forward, (T, B, F) (previous_output).
    public let fedOutputs = FloatBuffer()

    /// reconstruction (T, B, F) of x (B, T, F): encode, then decode for T steps. `feed` (T, B, F),
    /// for previous_output, replaces the outputs fed back with given constants (a gradient check
    /// holds them at the values of one pass, as back-propagation treats them).
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths: [Int]? = nil, dropout: DropoutContext? = nil,
                        feed: UnsafePointer<Float>? = nil) {
        encode(x, batch: B, steps: T, lengths: lengths, dropout: dropout)
        let H = decoder.hiddenSize, Z = latentSize, F = features, L = decoder.layerCount
        reconstruction.resize(T * B * F)
        switch decoderInput {
        case .repeatLatent:
            decoderInputs.resize(T * B * Z)
            for t in 0..<T { (decoderInputs.pointer + t * B * Z).update(from: latent.pointer, count: B * Z) }
            decoder.forward(nil, decoderInputs.pointer, inputLayout: .stepMajor, batch: B, steps: T, initial: nil, final: nil,
                            parameters: parameters, dropout: dropout)
            head.forward(reconstruction.pointer, decoder.outputs, rows: T * B, parameters: parameters)
        case .previousOutput:
            initialState.resize(B * L * H)
            toState!.forward(initialState.pointer, latent.pointer, rows: B, parameters: parameters)
            applyTanh(initialState.pointer, initialState.pointer, count: B * L * H)
            let start = RecurrentState.fromRows(initialState.pointer, cell: decoder.cellKind, layers: L, batch: B, width: H)
            decoder.beginSteps(batch: B, capacity: T, initial: start, parameters: parameters, dropout: dropout)
            fedOutputs.resize(T * B * F)
            for t in 0..<T {
                let fed = fedOutputs.pointer + t * B * F  // (B, F): zeros, then the previous output
                if let feed {
                    fed.update(from: feed + t * B * F, count: B * F)
                } else if t == 0 {
                    fed.update(repeating: 0, count: B * F)
                } else {
                    fed.update(from: reconstruction.pointer + (t - 1) * B * F, count: B * F)
                }
                let out = decoder.step(fed, parameters: parameters)
                head.forward(reconstruction.pointer + t * B * F, out, rows: B, parameters: parameters)
            }
            decoder.endSteps(final: nil)
        }
    }

    /// The counted (T, B) rows: 1 for steps before each sample's length (`counted`, default the
    /// lengths of the last forward; 0 leaves a row out).
    func stepMask(_ counted: [Int]? = nil) -> [Float] {
        var mask = [Float](repeating: 0, count: steps * batch)
        for b in 0..<batch { for t in 0..<min(counted?[b] ?? lengths[b], steps) { mask[t * batch + b] = 1 } }
        return mask
    }

    /// Back-propagates dReconstruction (T, B, F) (the gradient of the loss sum), adding every weight
    /// gradient. `gradientsReady(offset)` is called as parts of the arena become final.
    public func backward(_ dY: UnsafePointer<Float>, gradientsReady: ((Int) -> Void)? = nil) {
        let B = batch, T = steps, H = decoder.hiddenSize, Z = latentSize, L = decoder.layerCount
        let ready = { (stack: RecurrentNetwork) in gradientsReady.map { done in { (l: Int) in done(stack.layers[l].inputWeight.offset) } } }
        dDecoded.resize(T * B * H)
        head.backward(dDecoded.pointer, dY, decoder.outputs, rows: T * B, parameters: parameters)
        gradientsReady?(head.weight.offset)
        dLatent.resize(B * Z)
        switch decoderInput {
        case .repeatLatent:
            dInputs.resize(T * B * Z)
            decoder.backward(dInputs.pointer, inputLayout: .stepMajor, dDecoded.pointer, outputLayout: .stepMajor,
                             parameters: parameters, afterLayer: ready(decoder))
            // The latent was fed at every step: its gradient is the sum over the steps.
            dLatent.pointer.update(from: dInputs.pointer, count: B * Z)
            for t in 1..<max(T, 1) { addInPlace(dLatent.pointer, dInputs.pointer + t * B * Z, count: B * Z) }
        case .previousOutput:
            let dStart = RecurrentState(cell: decoder.cellKind, layers: L, batch: B, width: H)
            decoder.backward(nil, dDecoded.pointer, outputLayout: .stepMajor, dInitial: dStart, parameters: parameters,
                             afterLayer: ready(decoder))
            dStart.gradientOfRows(dState, throughTanh: initialState)
            toState!.backward(dLatent.pointer, dState.pointer, latent.pointer, rows: B, parameters: parameters)
            gradientsReady?(toState!.weight.offset)
        }
        dEncoded.resize(B * H)
        toLatent.backward(dEncoded.pointer, dLatent.pointer, encoded.pointer, rows: B, parameters: parameters)
        gradientsReady?(toLatent.weight.offset)
        // Only each sample's last valid step reached the latent.
        dEncoderOutputs.resize(T * B * H)
        dEncoderOutputs.zero()
        for b in 0..<B { (dEncoderOutputs.pointer + ((lengths[b] - 1) * B + b) * H).update(from: dEncoded.pointer + b * H, count: H) }
        encoder.backward(nil, dEncoderOutputs.pointer, outputLayout: .stepMajor, parameters: parameters, afterLayer: ready(encoder))
        gradientsReady?(0)
    }

    /// The loss of the reconstruction against x (B, T, F) over the valid steps (`counted` lengths
    /// per row when given: 0 leaves a row out); with `gradient`, back-propagates its sum.
    public func loss(target x: UnsafePointer<Float>, loss kind: RegressionLoss = .mse, gradient: Bool, countedLengths counted: [Int]? = nil,
                     gradientsReady: ((Int) -> Void)? = nil) -> LossTotal {
        let B = batch, T = steps, F = features
        target.resize(T * B * F)
        copySequence(target.pointer, .stepMajor, x, .batchFirst, batch: B, steps: T, width: F)
        if gradient { dReconstruction.resize(T * B * F) }
        let mask = stepMask(counted)
        let total = mask.withUnsafeBufferPointer {
            kind.evaluate(gradient ? dReconstruction.pointer : nil, prediction: reconstruction.pointer, target: target.pointer,
                          mask: $0.baseAddress, rows: T * B, features: F)
        }
        if gradient { backward(dReconstruction.pointer, gradientsReady: gradientsReady) }
        return total
    }
}
