# tok tests. The GGUF-based ones need the reader in src/gguf (guard until it lands).
file(GLOB _tok_gguf_src ${CMAKE_SOURCE_DIR}/src/gguf/*.c)
if(_tok_gguf_src)
  spoke_test(test_tok_vectors ${CMAKE_CURRENT_LIST_DIR}/test_tok_vectors.c LABELS unit TIMEOUT 120)
endif()
