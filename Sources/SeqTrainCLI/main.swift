import SeqTrainKit
print("seqtrain")
