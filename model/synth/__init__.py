"""Images made in code, seeded, for evaluation and training: MNIST test digits drawn as uploads
look (`realworld`), numbers (`realnumbers`), images with no digit (`negatives`), MNIST training
digits rendered as uploads (`renders`), and the strokes and fonts they are drawn with."""
