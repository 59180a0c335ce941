/// Sequence autoencoder (the Keras recipe): an encoder LSTM's last hidden state → Linear to a latent
/// vector → repeated at every step → decoder LSTM → per-step Linear back to the features; MSE
/// against the input. The PyTorch module:
///
///     class AE(nn.Module):
///         def __init__(s, F, H, Z):
///             super().__init__()
///             s.encoder = nn.LSTM(F, H, 1, batch_first=True)
///             s.to_latent = nn.Linear(H, Z)
///             s.decoder = nn.LSTM(Z, H, 1, batch_first=True)
///             s.head = nn.Linear(H, F)
///         def forward(s, x):
///             _, (h, _) = s.encoder(x)
///             z = s.to_latent(h[-1])
///             out, _ = s.decoder(z.unsqueeze(1).repeat(1, x.shape[1], 1))
///             return s.head(out), z
///
/// Legend: B batch, T steps, F features, H hidden, Z latent.
public final class LSTMAutoencoder {
    public let encoder: RecurrentNetwork
    public let toLatent: Linear
    public let decoder: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena

    public let latent = FloatBuffer()          // (B, Z)
    public let reconstruction = FloatBuffer()  // (B, T, F)
    private let encoded = FloatBuffer()        // (B, H): encoder's last h
    private let repeated = FloatBuffer()       // (B, T, Z)
    private let decoded = FloatBuffer()        // (B, T, H)
    private let dReconstruction = FloatBuffer(), dDecoded = FloatBuffer(), dRepeated = FloatBuffer(), dLatent = FloatBuffer()
    private var batch = 0, steps = 0

    public init(features: Int, hiddenSize: Int, latentSize: Int) {
        var layout = ParameterLayout()
        encoder = RecurrentNetwork("encoder", cell: .lstm, inputSize: features, hiddenSize: hiddenSize, layout: &layout)
        toLatent = Linear("to_latent", inFeatures: hiddenSize, outFeatures: latentSize, layout: &layout)
        decoder = RecurrentNetwork("decoder", cell: .lstm, inputSize: latentSize, hiddenSize: hiddenSize, dropoutStream: 2, layout: &layout)
        head = Linear("head", inFeatures: hiddenSize, outFeatures: features, layout: &layout)
        parameters = ParameterArena(layout)
    }

    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int) {
        batch = B
        steps = T
        let H = encoder.hiddenSize, Z = toLatent.outFeatures, F = head.outFeatures
        let state = RecurrentState(cell: .lstm, layers: 1, batch: B, width: H)
        encoder.forward(nil, x, batch: B, steps: T, initial: nil, final: state, parameters: parameters)
        encoded.resize(B * H)
        encoded.pointer.update(from: state.hidden.pointer, count: B * H)
        latent.resize(B * Z)
        toLatent.forward(latent.pointer, encoded.pointer, rows: B, parameters: parameters)
        repeated.resize(B * T * Z)
        for b in 0..<B { for t in 0..<T { (repeated.pointer + (b * T + t) * Z).update(from: latent.pointer + b * Z, count: Z) } }
        decoded.resize(B * T * H)
        decoder.forward(decoded.pointer, repeated.pointer, batch: B, steps: T, initial: nil, final: nil, parameters: parameters)
        reconstruction.resize(B * T * F)
        head.forward(reconstruction.pointer, decoded.pointer, rows: B * T, parameters: parameters)
    }

    /// MSE against x (B, T, F); with `gradient`, back-propagates the sum through both LSTMs.
    public func loss(target x: UnsafePointer<Float>, gradient: Bool) -> LossTotal {
        let B = batch, T = steps, H = encoder.hiddenSize, Z = toLatent.outFeatures, F = head.outFeatures
        if gradient { dReconstruction.resize(B * T * F) }
        let total = RegressionLoss.mse.evaluate(gradient ? dReconstruction.pointer : nil, prediction: reconstruction.pointer,
                                                target: x, rows: B * T, features: F)
        guard gradient else { return total }
        dDecoded.resize(B * T * H)
        head.backward(dDecoded.pointer, dReconstruction.pointer, decoded.pointer, rows: B * T, parameters: parameters)
        dRepeated.resize(B * T * Z)
        decoder.backward(dRepeated.pointer, dDecoded.pointer, parameters: parameters)
        // The latent was repeated T times: its gradient is the sum over steps.
        dLatent.resize(B * Z)
        dLatent.zero()
        for b in 0..<B { for t in 0..<T { addInPlace(dLatent.pointer + b * Z, dRepeated.pointer + (b * T + t) * Z, count: Z) } }
        let dFinal = RecurrentState(cell: .lstm, layers: 1, batch: B, width: H)
        toLatent.backward(dFinal.hidden.pointer, dLatent.pointer, encoded.pointer, rows: B, parameters: parameters)
        encoder.backward(nil, nil, dFinal: dFinal, parameters: parameters)
        return total
    }
}
