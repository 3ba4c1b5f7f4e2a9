"""Plumbing the library stands on, which a notebook user never needs to call: file safety
(`paths`: which file is which; `writing`: the one atomic writer; `reading`: bounded reads),
what reaches a terminal (`terminal`), the corpus cache, the metrics log, BLAS threads and the
model's scratch memory (`workspace`). A new file guarantee goes here."""
