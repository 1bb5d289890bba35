spoke_test(test_backend ${CMAKE_CURRENT_LIST_DIR}/test_backend.c LABELS unit)
