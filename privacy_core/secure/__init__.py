"""Encrypted cross-site statistics: packed Paillier, threshold decryption, distributed DP noise and the file protocol."""  # noqa: E501
