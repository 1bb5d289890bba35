spoke_test(test_cache ${CMAKE_CURRENT_LIST_DIR}/test_cache.c LABELS unit TIMEOUT 60)
