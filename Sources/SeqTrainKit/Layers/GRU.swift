/// The GRU cell's time loops (PyTorch's `nn.GRU`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden, G = 3H gates in PyTorch's order r, z, n.
///
///     r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)     z alike
///     n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))
///     h′ = (1 − z) ⊙ n + z ⊙ h
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l] (r, z, n), hidden[l], and cell[l] holding W_hn h + b_hn.
    func gruForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 3 * H
        let w = layers[l]
        projectInput(l, bias: p.value(w.inputBias), parameters: p)
        let whh = p.value(w.recurrentWeight), bhh = p.value(w.recurrentBias)  // (G, H), (G)
        stepScratch.resize(B * G)
        let gh = stepScratch.pointer                    // (B, G): h W_hhᵀ + b_hh of this step
        for t in 0..<T {
            let g = gates[l].pointer + t * B * G        // (B, G)
            let hPrev = hidden[l].pointer + t * B * H   // (B, H)
            let hNext = hPrev + B * H                   // (B, H)
            let hn = cell[l].pointer + t * B * H        // (B, H)
            broadcastRows(gh, bhh, rowCount: B, width: G)
            gemm(gh, ldc: G, hPrev, lda: H, whh, ldb: H, transposeB: true, m: B, n: G, k: H, beta: 1)
            for b in 0..<B {
                let gb = g + b * G, hb = gh + b * G, o = b * H
                for j in 0..<H {
                    let r = sigmoid(gb[j] + hb[j])
                    let z = sigmoid(gb[H + j] + hb[H + j])
                    let hnv = hb[2 * H + j]
                    let n = fastTanh(gb[2 * H + j] + r * hnv)
                    gb[j] = r; gb[H + j] = z; gb[2 * H + j] = n
                    hn[o + j] = hnv
                    hNext[o + j] = (1 - z) * n + z * hPrev[o + j]
                }
            }
        }
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden (B, H) the gradient
    /// of the final state. Out: dGates (T, B, G) as seen by W_ih and b_ih, dRecurrentGates (T, B, G)
    /// as seen by W_hh and b_hh (the n part times r), dHidden the gradient of the initial state.
    func gruBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 3 * H
        let whh = p.value(layers[l].recurrentWeight)  // (G, H)
        let dh = dHidden.pointer                      // (B, H)
        for t in stride(from: T - 1, through: 0, by: -1) {
            let g = gates[l].pointer + t * B * G           // (B, G)
            let dgx = dGates.pointer + t * B * G           // (B, G)
            let dgh = dRecurrentGates.pointer + t * B * G  // (B, G)
            let hPrev = hidden[l].pointer + t * B * H      // (B, H)
            let hn = cell[l].pointer + t * B * H           // (B, H)
            let dOut = dOutput.pointer + t * B * H         // (B, H)
            for b in 0..<B {
                let gb = g + b * G, dxb = dgx + b * G, dhb = dgh + b * G, o = b * H
                for j in 0..<H {
                    let k = o + j
                    let dhk = dOut[k] + dh[k]
                    let r = gb[j], z = gb[H + j], n = gb[2 * H + j]
                    let dnPre = dhk * (1 - z) * (1 - n * n)
                    let drPre = dnPre * hn[k] * r * (1 - r)
                    let dzPre = dhk * (hPrev[k] - n) * z * (1 - z)
                    dxb[j] = drPre; dxb[H + j] = dzPre; dxb[2 * H + j] = dnPre
                    dhb[j] = drPre; dhb[H + j] = dzPre; dhb[2 * H + j] = dnPre * r
                    dh[k] = dhk * z
                }
            }
            gemm(dh, ldc: H, dgh, lda: G, whh, ldb: H, m: B, n: H, k: G, beta: 1)  // dh += dgh W_hh
        }
    }
}
