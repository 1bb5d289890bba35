spoke_test(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c LABELS unit TIMEOUT 60)
