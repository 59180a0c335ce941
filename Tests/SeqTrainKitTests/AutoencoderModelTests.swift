import XCTest
import SeqTrainKit

extension GradientCheckTests {
    /// Both decoder inputs and both cells, two layers, samples of different lengths: every
    /// parameter against finite differences of the masked loss.
    func testSequenceAutoencoderGradients() throws {
        for mode in DecoderInput.allCases {
            for cell in RecurrentCell.allCases {
                let (B, T, F) = (3, 5, 2)
                let model = SequenceAutoencoder(cell: cell, features: F, hiddenSize: 4, latentSize: 3, layers: 2, decoderInput: mode)
                model.parameters.initialize(seed: 12)
                let x = FloatBuffer()
                x.copy(from: randomValues(B * T * F, seed: 13, scale: 1.5))
                let lengths = [5, 2, 4]
                // The outputs fed back are constants to back-propagation: hold them at one pass's values.
                model.forward(x.pointer, batch: B, steps: T, lengths: lengths)
                let feed = model.fedOutputs.array
                func loss() -> Double {
                    feed.withUnsafeBufferPointer { model.forward(x.pointer, batch: B, steps: T, lengths: lengths, feed: mode == .previousOutput ? $0.baseAddress : nil) }
                    return model.loss(target: x.pointer, gradient: false).sum
                }
                try checkParameters(model.parameters, what: "\(mode) \(cell) ", loss: loss) {
                    _ = loss()
                    _ = model.loss(target: x.pointer, gradient: true)
                }
            }
        }
    }
}

final class AutoencoderModelTests: XCTestCase {
    /// A sample padded with zeros past its length gives the loss and gradients of the same sample
    /// cut to its length, for both decoder inputs.
    func testPaddedStepsChangeNeitherLossNorGradients() throws {
        let (T, F) = (7, 2)
        let lengths = [7, 4]
        let r = CounterRandom(seed: 5, purpose: .synthetic)
        var x = (0..<(2 * T * F)).map { 2 * r.uniform(stream: 1, index: UInt64($0)) - 1 }
        for t in 4..<T { for f in 0..<F { x[(T + t) * F + f] = 0 } }
        for mode in DecoderInput.allCases {
            for cell in RecurrentCell.allCases {
                let padded = SequenceAutoencoder(cell: cell, features: F, hiddenSize: 6, latentSize: 3, layers: 2, decoderInput: mode)
                padded.parameters.initialize(seed: 6)
                padded.parameters.zeroGradients()
                pointer(x) { padded.forward($0, batch: 2, steps: T, lengths: lengths) }
                var total = LossTotal()
                pointer(x) { total = padded.loss(target: $0, gradient: true) }
                XCTAssertEqual(total.count, Double((7 + 4) * F), "only valid steps count")

                let cut = SequenceAutoencoder(cell: cell, features: F, hiddenSize: 6, latentSize: 3, layers: 2, decoderInput: mode)
                cut.parameters.values.copy(from: padded.parameters.values.array)
                cut.parameters.zeroGradients()
                var cutTotal = LossTotal()
                for (s, length) in lengths.enumerated() {
                    let sample = Array(x[(s * T * F)..<(s * T * F + length * F)])
                    pointer(sample) { cut.forward($0, batch: 1, steps: length) }
                    pointer(sample) { cutTotal = cutTotal + cut.loss(target: $0, gradient: true) }
                }
                XCTAssertEqual(total.sum, cutTotal.sum, accuracy: 1e-5, "\(mode) \(cell)")
                assertClose(padded.parameters.gradients.array, cut.parameters.gradients.array, "\(mode) \(cell): gradients", absolute: 1e-5)
            }
        }
    }
}
