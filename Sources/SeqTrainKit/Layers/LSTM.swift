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
                let gb = g + b * G
                applySigmoid(gb, count: 2 * H)               // i, f
                applyTanh(gb + 2 * H, gb + 2 * H, count: H)  // g
                applySigmoid(gb + 3 * H, count: H)           // o
                let gi = gb, gf = gb + H, gg = gb + 2 * H
                let cp = cPrev + b * H, cn = cNext + b * H
                for j in 0..<H { cn[j] = gf[j] * cp[j] + gi[j] * gg[j] }
            }
            applyTanh(tc, cNext, count: B * H)
            for b in 0..<B {
                let go = g + b * G + 3 * H, tco = tc + b * H, hn = hNext + b * H
                for j in 0..<H { hn[j] = go[j] * tco[j] }
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
            if t % 8 == 0 { progressHook?() }
            let g = gates[l].pointer + t * B * G      // (B, G)
            let dg = dGates.pointer + t * B * G       // (B, G)
            let cPrev = cell[l].pointer + t * B * H   // (B, H)
            let tc = tanhCell[l].pointer + t * B * H  // (B, H)
            let dOut = dOutput.pointer + t * B * H    // (B, H)
            for b in 0..<B {
                let o = b * H
                let gi = g + b * G, gf = gi + H, gg = gi + 2 * H, go = gi + 3 * H
                let di = dg + b * G, df = di + H, dgg = di + 2 * H, dgo = di + 3 * H
                let dOutB = dOut + o, dhB = dh + o, dcB = dc + o, tcB = tc + o, cpB = cPrev + o
                for j in 0..<H {
                    let dhk = dOutB[j] + dhB[j]
                    let i = gi[j], f = gf[j], gv = gg[j], og = go[j], tch = tcB[j]
                    let dck = dcB[j] + dhk * og * (1 - tch * tch)
                    di[j] = dck * gv * i * (1 - i)
                    df[j] = dck * cpB[j] * f * (1 - f)
                    dgg[j] = dck * i * (1 - gv * gv)
                    dgo[j] = dhk * tch * og * (1 - og)
                    dcB[j] = dck * f
                }
            }
            gemm(dh, ldc: H, dg, lda: G, whh, ldb: H, m: B, n: H, k: G)  // dh ← dg W_hh
        }
    }
}
