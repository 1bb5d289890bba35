spoke_test(test_tok ${CMAKE_CURRENT_LIST_DIR}/test_tok.c LABELS unit TIMEOUT 60)
spoke_test(test_tok_vectors ${CMAKE_CURRENT_LIST_DIR}/test_tok_vectors.c LABELS unit TIMEOUT 120)
spoke_test(test_tok_chat ${CMAKE_CURRENT_LIST_DIR}/test_tok_chat.c LABELS unit TIMEOUT 60)
