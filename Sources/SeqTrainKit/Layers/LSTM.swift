/// The LSTM cell's time loops (PyTorch's `nn.LSTM`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden, G = 4H gates in PyTorch's order i, f, g, o.
///
///     i = σ(x W_iiᵀ + b_ii + h W_hiᵀ + b_hi)      f, o alike
///     g = tanh(x W_igᵀ + b_ig + h W_hgᵀ + b_hg)
///     c′ = f ⊙ c + i ⊙ g,   h′ = o ⊙ tanh(c′)
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l], hidden[l], cell[l], tanhCell[l] filled.
    func lstmForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 4 * H
        let w = layers[l]
        combinedBias.resize(G)
        let bih = p.value(w.inputBias), bhh = p.value(w.recurrentBias)
        for j in 0..<G { combinedBias[j] = bih[j] + bhh[j] }
        projectInput(l, bias: combinedBias.pointer, parameters: p)
        let whh = p.value(w.recurrentWeight)  // (G, H)
        for t in 0..<T {
            let g = gates[l].pointer + t * B * G        // (B, G): input part in, activated gates out
            let hPrev = hidden[l].pointer + t * B * H   // (B, H)
            let hNext = hPrev + B * H                   // (B, H)
            let cPrev = cell[l].pointer + t * B * H     // (B, H)
            let cNext = cPrev + B * H                   // (B, H)
            let tc = tanhCell[l].pointer + t * B * H    // (B, H)
            gemm(g, ldc: G, hPrev, lda: H, whh, ldb: H, transposeB: true, m: B, n: G, k: H, beta: 1)
            for b in 0..<B {
                let gb = g + b * G, o = b * H
                for j in 0..<H {
                    let i = sigmoid(gb[j]), f = sigmoid(gb[H + j])
                    let gg = fastTanh(gb[2 * H + j]), og = sigmoid(gb[3 * H + j])
                    gb[j] = i; gb[H + j] = f; gb[2 * H + j] = gg; gb[3 * H + j] = og
                    let c = f * cPrev[o + j] + i * gg
                    let tch = fastTanh(c)
                    cNext[o + j] = c
                    tc[o + j] = tch
                    hNext[o + j] = og * tch
                }
            }
        }
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden and dCell (B, H)
    /// holding the gradient of the final state. Out: dGates (T, B, G) for the pre-activations,
    /// dHidden and dCell holding the gradient of the initial state.
    func lstmBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 4 * H
        let whh = p.value(layers[l].recurrentWeight)  // (G, H)
        let dh = dHidden.pointer, dc = dCell.pointer  // (B, H) each
        for t in stride(from: T - 1, through: 0, by: -1) {
            let g = gates[l].pointer + t * B * G      // (B, G)
            let dg = dGates.pointer + t * B * G       // (B, G)
            let cPrev = cell[l].pointer + t * B * H   // (B, H)
            let tc = tanhCell[l].pointer + t * B * H  // (B, H)
            let dOut = dOutput.pointer + t * B * H    // (B, H)
            for b in 0..<B {
                let gb = g + b * G, dgb = dg + b * G, o = b * H
                for j in 0..<H {
                    let k = o + j
                    let dhk = dOut[k] + dh[k]
                    let i = gb[j], f = gb[H + j], gg = gb[2 * H + j], og = gb[3 * H + j]
                    let tch = tc[k]
                    let dck = dc[k] + dhk * og * (1 - tch * tch)
                    dgb[j] = dck * gg * i * (1 - i)
                    dgb[H + j] = dck * cPrev[k] * f * (1 - f)
                    dgb[2 * H + j] = dck * i * (1 - gg * gg)
                    dgb[3 * H + j] = dhk * tch * og * (1 - og)
                    dc[k] = dck * f
                }
            }
            gemm(dh, ldc: H, dg, lda: G, whh, ldb: H, m: B, n: H, k: G)  // dh ← dg W_hh
        }
    }
}
