import SeqTrainKit

// A loss and its backward in one call, for the reference and gradient tests of the classifier
// models: the experiments compute their losses themselves (ClassifierExperiment).

extension SequenceClassifier {
    /// BCE-with-logits against targets (B, C) in [0, 1]; with `gradient`, back-propagates the sum.
    func loss(targets: UnsafePointer<Float>, loss lossFunction: BinaryCrossEntropyLoss,
              gradient: Bool) throws -> LossTotal {
        let dLogits = FloatBuffer(count: gradient ? batch * labelCount : 0)  // (B, C)
        let total = try lossFunction.evaluate(gradient ? dLogits.pointer : nil, logits: logits.pointer,
                                              targets: targets, rows: batch, classes: labelCount)
        if gradient { backward(dLogits.pointer) }
        return total
    }
}

extension MLPClassifier {
    /// Cross-entropy against class ids (N); with `gradient`, back-propagates the loss sum.
    func loss(targets: UnsafePointer<Int32>, loss lossFunction: CrossEntropyLoss, gradient: Bool) throws -> LossTotal {
        let n = rows
        let d = FloatBuffer(count: gradient ? n * classCount : 0)
        let total = try lossFunction.evaluate(gradient ? d.pointer : nil, logits: logits.pointer,
                                              targets: targets, rows: n, classes: classCount)
        if gradient { backward(d.pointer) }
        return total
    }
}
