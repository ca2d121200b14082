"""Offline evaluation of the proxy's arms on judged data (`crossrank eval`)."""
