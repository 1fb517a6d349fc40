"""From an upload to the network's 28x28 input: decoding with its limits (`decode`), grey level
(`gray`), the ink map (`ink`, `quantiles`), connected components (`components`), a sheet of paper
found in a photo (`sheet`), the digit's box and centring (`geometry`, `segment`, `level`), and the
two entry points, one digit (`preprocess`) and a row of digits (`number`). Errors a bad upload
raises are in `errors`."""
