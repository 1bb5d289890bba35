spoke_test(test_kv ${CMAKE_CURRENT_LIST_DIR}/test_kv.c LABELS unit)
